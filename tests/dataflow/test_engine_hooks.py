"""smeflow's RunEngine preprocessors are added once each, in the order installed, however
often a catalog subscribes the RunEngine (``dataflow.engine_hooks.add_preprocessor``)."""

from __future__ import annotations

from bluesky import RunEngine

from dataflow import fly_streams, run_files
from dataflow.engine_hooks import add_preprocessor


def test_each_preprocessor_is_added_once_in_order() -> None:
    RE = RunEngine({}, call_returns_result=False)
    own = list(RE.preprocessors)
    for _ in range(2):
        run_files.install(RE)
        fly_streams.install(RE)
    assert RE.preprocessors == [*own, run_files.close_files_before_stop,
                                fly_streams.declare_flyer_streams]
    add_preprocessor(object(), run_files.close_files_before_stop)  # (no list: left alone)
