"""The spooling writer without a beamline: documents kept on disk while the server is away,
never an exception into the caller, replay by a later writer or process, and the spool
file format (numpy values, a torn last line, errors naming file and line)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from event_model import compose_run

from dataflow.remote import RemoteCatalog
from dataflow.server import ServerHandle
from dataflow.spool import (
    SpoolError,
    SpoolingWriter,
    encode_document,
    is_transient,
    read_spool,
    replay_spool,
    spool_files,
)

KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with ServerHandle(tmp_path_factory.mktemp("spool") / "data", KEY) as handle:
        yield handle


def make_run(n: int, stop: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """A run of ``n`` events with numpy readings (what ophyd devices give)."""
    bundle = compose_run(metadata={"plan_name": "spool-unit"})
    desc = bundle.compose_descriptor(
        name="primary", data_keys={"x": {"source": "s", "shape": [], "dtype": "number"},
                                   "v": {"source": "s", "shape": [40], "dtype": "array",
                                         "dtype_numpy": "<i8"}})
    docs: list[tuple[str, dict[str, Any]]] = [("start", bundle.start_doc),
                                              ("descriptor", desc.descriptor_doc)]
    for i in range(n):
        docs.append(("event", desc.compose_event(
            data={"x": np.float64(i) / 2, "v": np.arange(40) + i},
            timestamps={"x": 1.0, "v": 1.0}, seq_num=i + 1)))
    if stop:
        docs.append(("stop", bundle.compose_stop()))
    return docs


def events(remote: RemoteCatalog, uid: str) -> np.ndarray:
    """The run's ``x`` readings, after checking its ``v`` arrays (each event once)."""
    table = remote.run(uid)["primary"].read()
    x = np.asarray(table["x"])
    np.testing.assert_array_equal(table["v"], np.arange(40)[None, :] + np.arange(len(x))[:, None])
    return x


def test_a_run_spooled_while_down_is_replayed_complete_and_only_once(
        server: ServerHandle, tmp_path: Path) -> None:
    with RemoteCatalog(server.url, KEY) as remote:
        writer = SpoolingWriter(remote.client, tmp_path / "spool", retry_interval=3600)
        docs = make_run(5)
        for name, doc in docs[:4]:
            writer(name, doc)
        server.stop()
        for name, doc in docs[4:]:
            writer(name, doc)  # never raises
        writer("event", {"descriptor": "nobody-knows", "seq_num": 1})  # ignored, logged
        (path,) = writer.pending
        assert [n for n, _ in read_spool(path)] == [n for n, _ in docs]
        assert not writer.flush()
        server.start()
        assert writer.flush() and writer.pending == [] and writer.replayed_runs == 1
        uid = docs[0][1]["uid"]
        np.testing.assert_array_equal(events(remote, uid), [0, 0.5, 1, 1.5, 2])
        assert remote.run(uid).metadata["stop"]["exit_status"] == "success"
        writer.close()


def test_a_later_writer_replays_what_an_earlier_one_left(server: ServerHandle,
                                                         tmp_path: Path) -> None:
    with RemoteCatalog(server.url, KEY) as remote:
        first = SpoolingWriter(remote.client, tmp_path / "spool", retry_interval=3600)
        docs = make_run(3)
        first(*docs[0])
        server.stop()
        for name, doc in docs[1:]:
            first(name, doc)
        first.close()  # the process ends with the run spooled
        server.start()
        second = SpoolingWriter(remote.client, tmp_path / "spool", retry_interval=3600)
        assert second.flush() and spool_files(tmp_path / "spool") == []
        np.testing.assert_array_equal(events(remote, docs[0][1]["uid"]), [0, 0.5, 1])
        second.close()


def test_an_open_run_held_by_its_writer_is_not_replayed_by_others(server: ServerHandle,
                                                                 tmp_path: Path) -> None:
    with RemoteCatalog(server.url, KEY) as remote:
        writer = SpoolingWriter(remote.client, tmp_path / "spool", retry_interval=3600)
        docs = make_run(2, stop=False)
        server.stop()
        for name, doc in docs:
            writer(name, doc)
        server.start()
        assert replay_spool(tmp_path / "spool", remote.client) == []  # locked: skipped
        assert len(writer.pending) == 1
        assert writer.flush()  # its own writer resumes it; the run continues live
        assert list(writer.runs()) == [(docs[0][1]["uid"], "live")]
        writer.close()


def test_spool_file_format(tmp_path: Path) -> None:
    docs = make_run(2)
    path = tmp_path / "run.jsonl"
    lines = [encode_document(name, doc) for name, doc in docs]
    path.write_text("\n".join(lines) + "\n" + lines[-1][:10])  # torn last line
    back = read_spool(path)
    assert [n for n, _ in back] == [n for n, _ in docs]
    assert back[2][1]["data"] == {"x": 0.0, "v": list(range(40))}
    for bad in ("{not json", "5", '"ab"', "[1, 2, 3]"):  # a JSON value must be [name, doc]
        path.write_text("\n".join([lines[0], bad, *lines[1:]]) + "\n")
        with pytest.raises(SpoolError, match=r"run\.jsonl:2: not a spooled document"):
            read_spool(path)
    path.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(SpoolError, match="does not begin with a start document"):
        read_spool(path)


def test_which_failures_count_as_server_away() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:1/")
    assert is_transient(httpx.ConnectError("refused", request=request))
    for code, transient in [(503, True), (500, True), (429, True), (404, False),
                            (401, False)]:
        error = httpx.HTTPStatusError("x", request=request,
                                      response=httpx.Response(code, request=request))
        assert is_transient(error) is transient, code
    try:
        try:
            raise httpx.ReadError("reset", request=request)
        except httpx.ReadError as exc:
            raise RuntimeError("writer failed") from exc
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(ValueError("bad document"))
    with pytest.raises(ValueError, match="batch_size 0"):
        SpoolingWriter(object(), ".", batch_size=0)


def test_replay_after_an_outage_never_holds_up_the_caller(server: ServerHandle,
                                                          tmp_path: Path) -> None:
    """The replay of a long spooled run runs in the writer's thread: each document the
    RunEngine hands over meanwhile takes one document write, not the whole replay (it
    used to block the RunEngine for as long as the replay took, ~29 s in the demo)."""
    import time

    with RemoteCatalog(server.url, KEY) as remote:
        writer = SpoolingWriter(remote.client, tmp_path / "spool", retry_interval=0.2)
        docs = make_run(120 + 30)  # (120 spooled events: a replay of seconds)
        stop = docs.pop()
        head, tail = docs[:2 + 120], docs[2 + 120:]
        writer(*head[0])
        server.stop()
        for name, doc in head[1:]:
            writer(name, doc)
        assert len(writer.pending) == 1
        server.start()
        began = time.monotonic()
        slowest = 0.0
        for name, doc in [*tail, stop]:
            t0 = time.monotonic()
            writer(name, doc)
            slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.02)
        deadline = time.monotonic() + 900
        while writer.pending and time.monotonic() < deadline:
            time.sleep(0.1)
        replay = time.monotonic() - began
        assert not writer.pending and writer.replayed_runs == 1
        # the caller waited for one document at most, never for the replay
        assert slowest < min(2.0, replay / 3), (slowest, replay)
        uid = docs[0][1]["uid"]
        np.testing.assert_array_equal(events(remote, uid), np.arange(150) / 2)
        assert remote.run(uid).metadata["stop"]["exit_status"] == "success"
        writer.close()


def test_a_replay_whose_delete_answer_was_lost_is_retried_not_rejected(
        server: ServerHandle, tmp_path: Path) -> None:
    """Under load the server can take longer than the client waits: the Tiled client then
    sends the request again, and a delete the server had already done answers 404 the
    second time. The replay's delete of the run's partial copy lost its answer that way
    (injected here: the answer of the first DELETE, already carried out, is dropped as a
    read timeout); the run was then kept aside as refused ("rejected") instead of being
    replayed. A run the server really refuses stays rejected
    (test_server.test_external_files_outside_raw_are_refused)."""
    with RemoteCatalog(server.url, KEY) as remote:
        writer = SpoolingWriter(remote.client, tmp_path / "spool", retry_interval=3600)
        docs = make_run(3)
        for name, doc in docs[:2]:
            writer(name, doc)  # live: the server holds a partial copy to delete on replay
        server.stop()
        for name, doc in docs[2:]:
            writer(name, doc)
        server.start()
        dropped: list[str] = []

        def lose_first_delete_answer(response: httpx.Response) -> None:
            if response.request.method == "DELETE" and not dropped:
                dropped.append(str(response.request.url))
                raise httpx.ReadTimeout("answer lost (injected)", request=response.request)

        hooks = remote.client.context.http_client.event_hooks
        hooks["response"] = [*hooks["response"], lose_first_delete_answer]
        assert writer.flush()
        assert dropped and writer.replayed_runs == 1
        assert list(tmp_path.joinpath("spool").iterdir()) == []  # nothing kept as rejected
        np.testing.assert_array_equal(events(remote, docs[0][1]["uid"]), [0, 0.5, 1])
        writer.close()


def lose_first(method: str, when: str, lost: list[str]) -> Any:
    """An httpx event hook losing the first ``method`` request (``when="request"``: before
    it is sent, the server never gets it) or its answer (``"response"``: the server has
    carried it out), as a read timeout."""
    def hook(message: Any) -> None:
        request = message if when == "request" else message.request
        if request.method == method and not lost:
            lost.append(str(request.url))
            raise httpx.ReadTimeout("lost (injected)", request=request)
    return hook


@pytest.mark.parametrize("when", ["response", "request"])
@pytest.mark.parametrize("kind", ["spooling", "subscribe"])
def test_a_live_append_lost_or_whose_answer_was_lost_holds_each_event_once(
        server: ServerHandle, tmp_path: Path, kind: str, when: str) -> None:
    """The server appended an event's row (a PATCH) but its answer was lost, and
    TiledWriter sent it again: the run held 4 rows of ``x`` for 3 events and 3 of ``v``
    and read back inconsistent, with nothing but TiledWriter's log saying so. The writer
    now asks the server how many rows the table holds before sending an append again:
    each event once, written live (no replay), whether the answer was lost or the
    request itself (then it is sent again). Both the spooling writer's live path and
    ``RemoteCatalog.subscribe``'s writer."""
    with RemoteCatalog(server.url, KEY) as remote:
        lost: list[str] = []
        hooks = remote.client.context.http_client.event_hooks
        hooks[when] = [*hooks[when], lose_first("PATCH", when, lost)]
        spooling = SpoolingWriter(remote.client, tmp_path / "spool", retry_interval=3600) \
            if kind == "spooling" else None
        writer = spooling if spooling is not None else remote.writer(1)
        docs = make_run(3)
        for name, doc in docs:
            writer(name, doc)
        assert lost, "no append (PATCH) was sent"
        if spooling is not None:  # written live, once: nothing spooled nor replayed
            assert list(spooling.runs()) == [] and spooling.replayed_runs == 0
            assert spooling.pending == []
            spooling.close()
        uid = docs[0][1]["uid"]
        np.testing.assert_array_equal(events(remote, uid), [0, 0.5, 1])
        assert remote.run(uid).metadata["stop"]["exit_status"] == "success"
