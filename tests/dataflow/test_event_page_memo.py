"""``PageValidator`` remembers the outlines it accepted: each later page of a stream is a
lookup (a fly's pages are checked by bluesky's RunEngine and again by the catalog's
normalizer, 0.55 ms of CPU each through the schema), and a page the schema refuses is
still refused, with the schema's own error, after any number of good ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from event_model import compose_run
from jsonschema import ValidationError

from dataflow.event_pages import PageNormalizer, PageValidator, install_page_validator
from tests.dataflow.test_event_pages import _schema_page_validator, _verdict


class Counting:
    """The schema's validator, counting the outlines it is asked about."""

    def __init__(self) -> None:
        self.full = _schema_page_validator()
        self.asked = 0

    def is_valid(self, instance: Any) -> bool:
        self.asked += 1
        return bool(self.full.is_valid(instance))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.full, name)


def pages(n_pages: int, n: int = 12) -> tuple[Any, Any, list[dict[str, Any]]]:
    """A run's and a stream's bundles and ``n_pages`` pages of ``n`` events as a fly's
    collect gives them (new times, uids and seq_nums on each page)."""
    run = compose_run(metadata={"plan_name": "memo_test"})
    stream = run.compose_descriptor(name="primary", data_keys={
        "roi": {"source": "sim", "dtype": "integer", "shape": []},
        "hist": {"source": "sim", "dtype": "array", "shape": [8]}})
    out = []
    for p in range(n_pages):
        seq = list(range(1 + p * n, 1 + (p + 1) * n))
        out.append(dict(stream.compose_event_page(
            data={"roi": seq, "hist": [[s] * 8 for s in seq]},
            timestamps={"roi": [1.7e9 + s / 7 for s in seq], "hist": [1.7e9] * n},
            seq_num=seq, validate=False)))
    return run, stream, out


def test_each_later_page_of_a_stream_is_not_checked_by_the_schema_again() -> None:
    counting = Counting()
    check = PageValidator(counting)
    _, _, good = pages(20)
    for page in good:
        check.validate(page)
        assert check.is_valid(page) and list(check.iter_errors(page)) == []
    assert counting.asked == 1
    other = dict(good[3], seq_num=[float(s) for s in good[3]["seq_num"]])
    check.validate(other)  # (integral floats: a kind not seen yet, asked once more)
    check.validate(other)
    assert counting.asked == 2
    _, _, another_stream = pages(2)
    for page in another_stream:
        check.validate(page)
    assert counting.asked == 3


@pytest.mark.parametrize("case", [
    "seq_num_text", "seq_num_bool", "seq_num_half", "uid_number", "uid_none", "time_text",
    "time_bool", "data_not_array", "stamps_not_array", "numpy_scalar", "extra_key",
    "no_uid", "descriptor_number", "filled_bad_item", "uid_tuple", "time_numpy"])
def test_a_page_the_schema_refuses_is_refused_after_good_ones(case: str) -> None:
    """After good pages of the stream were accepted (and remembered), each page broken
    in a way the schema checks gets the schema's own verdict and error, item index
    included: from the validator the RunEngine uses and from the catalog's normalizer."""
    full = _schema_page_validator()
    check = PageValidator(full)
    run, stream, good = pages(5)
    for page in good[:4]:
        check.validate(page)
    page: Any = good[4]
    bad = 7
    if case == "seq_num_text":
        page["seq_num"][bad] = "8"
    elif case == "seq_num_bool":
        page["seq_num"][bad] = True
    elif case == "seq_num_half":
        page["seq_num"][bad] = 8.5
    elif case == "uid_number":
        page["uid"][bad] = 7
    elif case == "uid_none":
        page["uid"][bad] = None
    elif case == "time_text":
        page["time"][bad] = "now"
    elif case == "time_bool":
        page["time"][bad] = False
    elif case == "data_not_array":
        page["data"]["roi"] = 3
    elif case == "stamps_not_array":
        page["timestamps"]["hist"] = {"t": 1.0}
    elif case == "numpy_scalar":
        page["data"]["roi"] = np.int64(4)
    elif case == "extra_key":
        page["comment"] = "not in the schema"
    elif case == "no_uid":
        del page["uid"]
    elif case == "descriptor_number":
        page["descriptor"] = 5
    elif case == "filled_bad_item":
        page["filled"] = {"image": [False] * bad + [3]}
    elif case == "uid_tuple":
        page["uid"] = (*page["uid"][:-1], 3)
    elif case == "time_numpy":
        page["time"][bad] = np.float32(1.0)  # (a number to the schema: accepted)
    ours = _verdict(check, page)
    assert ours == _verdict(full, page)
    assert ours[0] == (case == "time_numpy")
    if case == "filled_bad_item":
        return  # (the normalizer's per-event path, RunNormalizer's own, drops ``filled``)
    normalizer = PageNormalizer()
    names: list[str] = []
    normalizer.subscribe(lambda name, doc: names.append(name))
    install_page_validator()  # (as every catalog writer does)
    normalizer("start", dict(run.start_doc))
    normalizer("descriptor", dict(stream.descriptor_doc))
    for earlier in good[:4]:
        normalizer("event_page", earlier)
    if ours[0]:
        normalizer("event_page", page)
        assert names[-1] == "event_page"
    else:
        with pytest.raises((ValidationError, TypeError, KeyError)):  # (the check's own)
            normalizer("event_page", page)
        assert names[-1] == "event_page" and names.count("event_page") == 4
