"""The catalog's document normalizer (``dataflow.event_pages.PageNormalizer``) against
``bluesky_tiled_plugins``' own ``RunNormalizer``: the same documents written through each
into a catalog read back the same, and only pages that need no rewriting skip the
event-by-event path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky_tiled_plugins import TiledWriter
from bluesky_tiled_plugins.writing.tiled_writer import RunNormalizer
from event_model import compose_run

from dataflow.catalog import Catalog
from dataflow.event_pages import PageNormalizer

Document = tuple[str, dict[str, Any]]


def run_documents(n: int, extra_key: str | None = None) -> list[Document]:
    """A run of one stream whose ``n`` events come in two pages, as a fly scan's
    ``collect`` emits them: integers, floats, an array of 32 (stored as its own array
    node) and an external image key that no event carries (its frames are announced by
    stream documents). ``extra_key``: one more number under that name."""
    run = compose_run(metadata={"plan_name": "fly_test"})
    keys: dict[str, Any] = {
        "roi": {"source": "sim", "dtype": "integer", "shape": []},
        "hist": {"source": "sim", "dtype": "array", "shape": [32], "dtype_numpy": "<i8"},
        "angle": {"source": "sim", "dtype": "number", "shape": []},
        "image": {"source": "sim", "dtype": "array", "shape": [8, 8], "dtype_numpy": "<u2",
                  "external": "STREAM:"},
    }
    if extra_key is not None:
        keys[extra_key] = {"source": "sim", "dtype": "number", "shape": []}
    stream = run.compose_descriptor(data_keys=keys, name="primary")
    docs: list[Document] = [("start", dict(run.start_doc)),
                            ("descriptor", dict(stream.descriptor_doc))]
    rng = np.random.default_rng(7)
    for first in (0, n // 2):
        rows = range(first, n // 2 if first == 0 else n)
        data: dict[str, list[Any]] = {
            "roi": [int(v) for v in rng.integers(0, 1 << 40, len(rows))],
            "hist": [[int(v) for v in rng.integers(0, 1000, 32)] for _ in rows],
            "angle": [0.25 * i for i in rows],
        }
        if extra_key is not None:
            data[extra_key] = [1e3 + i for i in rows]
        stamps = {key: [1.7e9 + 0.002 * i for i in rows] for key in data}
        docs.append(("event_page", dict(stream.compose_event_page(data=data,
                                                                  timestamps=stamps))))
    docs.append(("stop", dict(run.compose_stop())))
    return docs


def write(docs: list[Document], writer: Any) -> str:
    for name, doc in docs:
        writer(name, doc)
    uid: str = docs[0][1]["uid"]
    return uid


def stream_columns(catalog: Catalog, uid: str) -> dict[str, np.ndarray]:
    stream = catalog.run(uid)["primary"]
    return {key: np.asarray(stream[key].read()) for key in stream}


@pytest.fixture
def catalogs(tmp_path: Path) -> Iterator[tuple[Catalog, Catalog]]:
    ours, theirs = Catalog(tmp_path / "ours"), Catalog(tmp_path / "theirs")
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize("extra_key", [None, "time"])
def test_the_catalog_stores_what_the_run_normalizer_stores(
        catalogs: tuple[Catalog, Catalog], extra_key: str | None) -> None:
    """Pages handed on whole (no ``extra_key``) and pages with a data key the table
    reserves (``time``, renamed ``time_`` event by event) read back as through
    ``RunNormalizer``."""
    ours, theirs = catalogs
    docs = run_documents(10, extra_key)
    uid = write(docs, ours.writer())
    assert write(docs, TiledWriter(theirs.client, normalizer=RunNormalizer)) == uid
    got, want = stream_columns(ours, uid), stream_columns(theirs, uid)
    assert sorted(got) == sorted(want)
    assert {"roi", "hist", "angle", "ts_roi", "seq_num"} <= set(got)
    if extra_key is not None:
        assert {"time_", "ts_time_"} <= set(got)
    for key, values in want.items():
        np.testing.assert_array_equal(got[key], values, err_msg=key)
    pages = [doc for name, doc in docs if name == "event_page"]
    np.testing.assert_array_equal(got["hist"], [h for page in pages for h in page["data"]["hist"]])
    np.testing.assert_array_equal(got["roi"], [v for page in pages for v in page["data"]["roi"]])


def emitted(docs: list[Document]) -> list[str]:
    """The names of the documents ``PageNormalizer`` passes on for ``docs``."""
    normalizer = PageNormalizer()
    names: list[str] = []
    normalizer.subscribe(lambda name, doc: names.append(name))
    for name, doc in docs:
        normalizer(name, doc)
    return names


def test_pages_that_need_no_rewriting_go_on_whole() -> None:
    assert emitted(run_documents(10)) == ["start", "descriptor", "event_page", "event_page",
                                          "stop"]


@pytest.mark.parametrize("case", ["reserved", "filled", "undeclared", "patched"])
def test_other_pages_go_event_by_event(case: str) -> None:
    """A reserved key, ``filled`` entries, a key the descriptor does not declare as
    internal and an ``event`` patch each take ``RunNormalizer``'s own path."""
    docs = run_documents(4, "seq_num" if case == "reserved" else None)
    page = docs[2][1]
    if case == "filled":
        page["filled"] = {"angle": [True, True]}
    elif case == "undeclared":
        page["data"]["other"] = [1, 2]
        page["timestamps"]["other"] = [1.0, 2.0]
    normalizer = PageNormalizer(patches={"event": lambda doc: doc} if case == "patched"
                                else None)
    names: list[str] = []
    normalizer.subscribe(lambda name, doc: names.append(name))
    for name, doc in docs:
        normalizer(name, doc)
    assert names[2:4] == ["event", "event"]


@pytest.mark.parametrize("kind", [RunNormalizer, PageNormalizer])
def test_rows_handed_on_do_not_change_when_the_producer_reuses_its_buffer(kind: Any) -> None:
    """The run writer keeps rows until it writes a batch, so what the normalizer emits
    must not share the producer's arrays: a producer filling the same buffer for its next
    page must not change rows already handed on (the per-event path copies each event;
    the page path copies the page)."""
    bundle = compose_run()
    desc = bundle.compose_descriptor(name="primary", data_keys={
        "spectrum": {"source": "sim", "dtype": "array", "shape": [4], "dtype_numpy": "<f8"}})
    buffer = np.arange(8, dtype=np.float64).reshape(2, 4)
    stamps = [1.0, 2.0]
    page = desc.compose_event_page(data={"spectrum": buffer},
                                   timestamps={"spectrum": stamps}, seq_num=[1, 2],
                                   time=[1.0, 2.0])
    received: list[Any] = []

    def keep(name: str, doc: dict[str, Any]) -> None:
        if name == "event":
            received.append(np.array(doc["data"]["spectrum"]))
        elif name == "event_page":
            received.extend(doc["data"]["spectrum"])
            received.append(doc["timestamps"]["spectrum"])

    normalizer = kind()
    normalizer.subscribe(keep)
    normalizer.start(bundle.start_doc)
    normalizer.descriptor(desc.descriptor_doc)
    normalizer.event_page(page)
    buffer[:] = -1.0  # the producer's next page, in the same buffer
    stamps[:] = [0.0, 0.0]
    rows = [r for r in received if not isinstance(r, list)]
    np.testing.assert_array_equal(np.stack(rows), np.arange(8.0).reshape(2, 4))
    assert all(r == [1.0, 2.0] for r in received if isinstance(r, list))


@pytest.mark.parametrize("case", ["good", "data_not_array", "stamps_not_array", "no_time",
                                  "seq_num_text"])
def test_the_page_check_gives_the_event_page_schemas_verdict(case: str) -> None:
    """The page path checks an outline of the page (its array columns emptied, to keep
    the check's cost off the size of the data): each page the event-page schema refuses
    is refused, with a ``ValidationError``, and a good one passes."""
    from event_model import DocumentNames, schema_validators
    from jsonschema import ValidationError

    docs = run_documents(4)
    page = docs[2][1]
    if case == "data_not_array":
        page["data"]["angle"] = 0.5
    elif case == "stamps_not_array":
        page["timestamps"]["roi"] = {"t": 1.0}
    elif case == "no_time":
        del page["time"]
    elif case == "seq_num_text":
        page["seq_num"] = ["1", "2"]
    schema_ok = schema_validators[DocumentNames.event_page].is_valid(page)
    assert schema_ok == (case == "good")
    normalizer = PageNormalizer()
    names: list[str] = []
    normalizer.subscribe(lambda name, doc: names.append(name))
    normalizer("start", docs[0][1])
    normalizer("descriptor", docs[1][1])
    if schema_ok:
        normalizer("event_page", page)
        assert names[-1] == "event_page"
    else:
        with pytest.raises(ValidationError):
            normalizer("event_page", page)
        assert names[-1] == "descriptor"


@pytest.mark.parametrize("case", ["numpy_scalar", "zero_d_array", "zero_d_stamps",
                                  "numpy_columns"])
def test_a_numpy_scalar_column_is_refused_as_the_schema_refuses_it(case: str) -> None:
    """Review E5: a data or timestamps column that is a numpy scalar or a 0-d array is
    no array to the event-page schema (event-model's check raises on it, a ``TypeError``
    from ``len()``); the page path passed it on, to fail later in the run writer. It is
    now refused with a ``ValidationError`` naming the column. 1-d numpy columns pass."""
    from event_model import DocumentNames, schema_validators
    from jsonschema import ValidationError

    docs = run_documents(4)
    page = docs[2][1]
    where = ["data", "angle"]
    if case == "numpy_scalar":
        page["data"]["angle"] = np.float64(0.5)
    elif case == "zero_d_array":
        where, page["data"]["roi"] = ["data", "roi"], np.array(3)
    elif case == "zero_d_stamps":
        where, page["timestamps"]["angle"] = ["timestamps", "angle"], np.array(1.7e9)
    else:
        page["data"] = {k: np.asarray(v) for k, v in page["data"].items()}
        page["timestamps"] = {k: np.asarray(v) for k, v in page["timestamps"].items()}
    normalizer = PageNormalizer()
    names: list[str] = []
    normalizer.subscribe(lambda name, doc: names.append(name))
    normalizer("start", docs[0][1])
    normalizer("descriptor", docs[1][1])
    if case == "numpy_columns":
        schema_validators[DocumentNames.event_page].validate(page)
        normalizer("event_page", page)
        assert names[-1] == "event_page"
        return
    with pytest.raises((TypeError, ValidationError)):  # (event-model's own verdict)
        schema_validators[DocumentNames.event_page].validate(page)
    with pytest.raises(ValidationError, match="is not of type 'array'") as refused:
        normalizer("event_page", page)
    assert list(refused.value.absolute_path) == where
    assert names[-1] == "descriptor"


@pytest.mark.parametrize("case", ["good", "integral_floats", "uid_number", "seq_num_float",
                                  "seq_num_bool", "time_text", "time_numpy", "uid_tuple"])
def test_the_page_check_of_its_own_columns_gives_the_schemas_verdict_and_error(
        case: str) -> None:
    """The page path checks one item of each kind of ``time``, ``seq_num`` and ``uid``
    (a 256-event page's items took 14 ms of CPU through the schema): a page the schema
    refuses for one bad item among many good ones is refused with the schema's own
    error (the same message and item index), and the pages it accepts pass, integral
    floats as ``seq_num`` included (JSON Schema's ``integer``)."""
    from event_model import DocumentNames, compose_run, schema_validators
    from jsonschema import ValidationError

    run = compose_run(metadata={"plan_name": "page_test"})
    stream = run.compose_descriptor(name="primary", data_keys={
        "row": {"source": "sim", "dtype": "integer", "shape": []}})
    n = 300
    page = dict(stream.compose_event_page(data={"row": list(range(n))},
                                          timestamps={"row": [1.7e9] * n},
                                          seq_num=list(range(1, n + 1)), validate=False))
    del page["filled"]  # (the page path drops it)
    bad = 137
    if case == "integral_floats":
        page["seq_num"] = [float(s) for s in page["seq_num"]]
    elif case == "uid_number":
        page["uid"][bad] = 7
    elif case == "seq_num_float":
        page["seq_num"][bad] = 137.5
    elif case == "seq_num_bool":
        page["seq_num"][bad] = True
    elif case == "time_text":
        page["time"][bad] = "now"
    elif case == "time_numpy":
        page["time"][bad] = np.float32(1.0)  # (a number to the schema: passes)
    elif case == "uid_tuple":
        page["uid"] = (*page["uid"][:-1], 3)  # (not a list: checked item by item)
    validator = schema_validators[DocumentNames.event_page]
    expected = next(validator.iter_errors(page), None)  # (what its validate() raises)
    normalizer = PageNormalizer()
    names: list[str] = []
    normalizer.subscribe(lambda name, doc: names.append(name))
    normalizer("start", dict(run.start_doc))
    normalizer("descriptor", dict(stream.descriptor_doc))
    if expected is None:
        assert case in ("good", "integral_floats", "time_numpy")
        normalizer("event_page", page)
        assert names[-1] == "event_page"
        return
    with pytest.raises(ValidationError) as refused:
        normalizer("event_page", page)
    assert refused.value.message == expected.message
    assert list(refused.value.absolute_path) == list(expected.absolute_path)
    assert list(refused.value.absolute_path)[1:] in ([], [bad], [n - 1])
    assert names[-1] == "descriptor"


def _schema_page_validator() -> Any:
    """event-model's own event-page validator (under the installed ``PageValidator``)."""
    from event_model import DocumentNames, schema_validators

    validator = schema_validators[DocumentNames.event_page]
    return getattr(validator, "full", validator)


def _verdict(check: Any, page: Any) -> tuple[bool, str | None, list[str]]:
    """What ``check`` says of ``page``: accepted, the error ``validate`` raises (its class
    and message) and the messages ``iter_errors`` gives."""
    try:
        check.validate(page)
        raised = None
    except Exception as exc:  # (a TypeError for a numpy scalar column: event-model's own)
        raised = f"{type(exc).__name__}: {exc}"
    try:
        listed = [e.message for e in check.iter_errors(page)]
    except TypeError as exc:
        listed = [f"TypeError: {exc}"]
    return check.is_valid(page) if raised is None or "TypeError" not in raised else False, \
        raised, listed


@pytest.mark.parametrize("case", [
    "good", "numpy_columns", "integral_floats", "data_not_array", "stamps_not_array",
    "no_time", "no_uid", "seq_num_text", "seq_num_bool", "uid_number", "time_text",
    "numpy_scalar", "extra_key", "filled_bad_item", "filled_good", "not_a_dict"])
def test_the_installed_page_validator_gives_the_schemas_verdicts_and_errors(
        case: str) -> None:
    """``PageValidator`` (what bluesky's RunEngine checks each collected page with once a
    catalog writer was made) accepts exactly the pages event-model's schema accepts and
    refuses the others with the schema's own error, item index included, among pages a
    fly's collect gives (300 events, a histogram column) and pages broken in each way
    the schema checks."""
    from dataflow.event_pages import PageValidator

    full = _schema_page_validator()
    run = compose_run(metadata={"plan_name": "page_test"})
    stream = run.compose_descriptor(name="primary", data_keys={
        "roi": {"source": "sim", "dtype": "integer", "shape": []},
        "hist": {"source": "sim", "dtype": "array", "shape": [64]}})
    n, bad = 300, 211
    page: Any = dict(stream.compose_event_page(
        data={"roi": list(range(n)), "hist": [list(range(64))] * n},
        timestamps={"roi": [1.7e9] * n, "hist": [1.7e9] * n}, validate=False))
    if case == "numpy_columns":
        page["data"] = {k: np.asarray(v) for k, v in page["data"].items()}
    elif case == "integral_floats":
        page["seq_num"] = [float(s) for s in page["seq_num"]]
    elif case == "data_not_array":
        page["data"]["roi"] = 3
    elif case == "stamps_not_array":
        page["timestamps"]["hist"] = {"t": 1.0}
    elif case in ("no_time", "no_uid"):
        del page[case[3:]]
    elif case == "seq_num_text":
        page["seq_num"][bad] = "212"
    elif case == "seq_num_bool":
        page["seq_num"][bad] = True
    elif case == "uid_number":
        page["uid"][bad] = 7
    elif case == "time_text":
        page["time"][bad] = "now"
    elif case == "numpy_scalar":
        page["data"]["roi"] = np.int64(4)
    elif case == "extra_key":
        page["comment"] = "not in the schema"
    elif case == "filled_bad_item":
        page["filled"] = {"image": [False] * bad + [3]}
    elif case == "filled_good":
        page["filled"] = {"image": [False] * n}
    elif case == "not_a_dict":
        page = [page]
    ours = _verdict(PageValidator(full), page)
    assert ours == _verdict(full, page)
    assert ours[0] == (case in ("good", "numpy_columns", "integral_floats", "filled_good"))


def test_a_good_page_is_checked_by_its_outline_only() -> None:
    """A good page never reaches the schema's item-by-item check: the schema sees its
    outline (no data, one item of each kind of its own columns), so the check's cost
    does not grow with the page's events (0.16 → 0.02 ms of CPU a frame)."""
    from dataflow.event_pages import PageValidator

    full = _schema_page_validator()
    seen: list[Any] = []

    class Spy:
        def is_valid(self, instance: Any) -> bool:
            seen.append(instance)
            return bool(full.is_valid(instance))

        def validate(self, instance: Any) -> None:
            raise AssertionError("the whole page was checked")

        iter_errors = validate

    docs = run_documents(400)
    check = PageValidator(Spy())
    for _, page in docs[2:4]:
        check.validate(page)
        assert check.is_valid(page) and list(check.iter_errors(page)) == []
    assert len(seen) == 1  # (the rest: the accepted outline remembered, test_event_page_memo)
    assert all(len(outline[key]) <= 1 for outline in seen for key in ("time", "seq_num", "uid"))
    assert all(column == [] for outline in seen for key in ("data", "timestamps")
               for column in outline[key].values())


def test_a_catalog_writer_installs_the_page_validator(tmp_path: Path) -> None:
    """Once a catalog writer is made (``Catalog.subscribe`` makes one), event-model's
    event-page check — the one bluesky's RunEngine composes every collected page
    with — is the ``PageValidator``, and a page it refuses is refused as before."""
    from event_model import DocumentNames, EventModelValidationError, schema_validators
    from jsonschema import ValidationError

    from dataflow.event_pages import PageValidator

    with Catalog(tmp_path / "c") as catalog:
        catalog.writer()
        assert isinstance(schema_validators[DocumentNames.event_page], PageValidator)
        run = compose_run()
        stream = run.compose_descriptor(name="primary", data_keys={
            "x": {"source": "sim", "dtype": "number", "shape": []}})
        stream.compose_event_page(data={"x": [1.0, 2.0]}, timestamps={"x": [1.0, 2.0]})
        with pytest.raises((ValidationError, EventModelValidationError)):
            stream.compose_event_page(data={"x": [1.0, 2.0]}, timestamps={"x": [1.0, 2.0]},
                                      seq_num=[1, "2"])


def test_a_column_the_outline_cannot_take_gets_the_schemas_own_verdict() -> None:
    """A column whose ``__array__`` raises cannot be outlined: the whole page goes to
    the schema's check, which gives its own verdict (no other error from the outline)."""
    from dataflow.event_pages import PageValidator

    class Odd:
        def __array__(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("no array here")

    full = _schema_page_validator()
    page = dict(run_documents(4)[2][1])
    page["data"] = {**page["data"], "roi": Odd()}
    assert _verdict(PageValidator(full), page) == _verdict(full, page)
