"""A run's frame files closed before its stop document, so that a file the disk cannot
hold fails the run instead of following a stop that says it succeeded.

bluesky emits a run's stop document at ``close_run``; a plan's devices are unstaged after
it (``stage_decorator(run_decorator(...))``: ``bluesky.plans.count`` and every smeflow
plan). A detector that closes its frame files at ``unstage`` closes them after its run
said ``exit_status: 'success'``, and HDF5 writes a file's last metadata when it closes
it: on a full disk that close fails (``dataflow.hdf5.FrameFileError``) once the catalog
already holds a successful run whose file is not whole.

:func:`close_files_before_stop`, a RunEngine preprocessor (:func:`install`; the catalogs'
``subscribe`` installs it), asks every object of the plan's messages that keeps files of
the run open (one with a ``close_run_files()`` method, such as the firmware detector) to
close them just before each ``close_run``, and closes every ``FrameWriter`` a run announced
that no such device owns (``dataflow.announced_writers.run_end_writers``: another ophyd
device writing through ``FrameWriter`` that would close it at ``unstage``, after the stop), of those
announced on the RunEngine's thread since that run's ``open_run``: another run's,
RunEngine's or thread's (the live reducer's derived files) are left alone. A file that
cannot be closed turns the run into
a failed one: its stop document says ``exit_status: 'fail'`` with the error (which names
the file) as reason, and the error is raised into the plan (out of ``RE(...)``, after its
clean-up). A run being closed as failed or aborted keeps its status and its plan's own
error; the file's error is added to its reason.
"""

from __future__ import annotations

import threading
from typing import Any

from bluesky import preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator

from .announced_writers import announcement_mark, run_end_writers
from .engine_hooks import add_preprocessor

__all__ = ["close_files_before_stop", "install"]


def close_files_before_stop(plan: MsgGenerator[Any]) -> MsgGenerator[Any]:
    """``plan`` with the files of each run closed before its ``close_run`` (see the module
    docstring)."""
    holders: dict[int, Any] = {}  # (id -> object: devices need not be hashable)
    ours: list[Msg] = []
    # (run key -> the thread of its open_run, the RunEngine's that collects its devices,
    # and announcement_mark then)
    opened: dict[Any, tuple[int, int]] = {}

    def writers(msg: Msg) -> list[Any]:
        at = opened.get(msg.run)
        return [] if at is None else run_end_writers(*at)

    def closing(msg: Msg) -> MsgGenerator[Any]:
        failures: list[Exception] = []
        for holder in list(holders.values()):
            try:
                holder.close_run_files()
            except Exception as exc:  # (every holder's files are closed first)
                failures.append(exc)
        for writer in writers(msg):  # (devices of this run that close theirs at unstage)
            try:
                writer.close()
            except Exception as exc:
                failures.append(exc)
        if not failures:
            return (yield msg)
        why = "; ".join(str(exc) for exc in failures)
        status = msg.kwargs.get("exit_status") or "success"
        reason = msg.kwargs.get("reason") or ""
        failed = msg._replace(kwargs={
            **msg.kwargs, "exit_status": "fail" if status == "success" else status,
            "reason": why if status == "success" or not reason else f"{reason}; {why}"})
        ours.append(failed)
        result = yield failed
        if status == "success":
            raise failures[0]
        return result

    def process(msg: Msg) -> tuple[MsgGenerator[Any] | None, None]:
        if any(msg is mine for mine in ours):
            return None, None
        if callable(getattr(msg.obj, "close_run_files", None)):
            holders.setdefault(id(msg.obj), msg.obj)
        if msg.command == "open_run":
            opened[msg.run] = (threading.get_ident(), announcement_mark())
        if msg.command == "close_run" and (holders or writers(msg)):
            return closing(msg), None
        return None, None

    result = yield from bpp.plan_mutator(plan, process)  # type: ignore[no-untyped-call]
    return result


def install(RE: Any) -> None:
    """Add :func:`close_files_before_stop` to ``RE``'s preprocessors (once)."""
    add_preprocessor(RE, close_files_before_stop)
