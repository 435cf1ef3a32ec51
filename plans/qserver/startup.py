"""The bluesky-queueserver startup profile of the simulated beamline.

The RE Manager's worker imports this module when its environment is opened
(``start-re-manager --startup-module plans.qserver.startup``, which ``smeflow queue``
runs); everything it defines at module level is what queued plans can name:

* ``RE``, writing every run into the default catalog (``$SMEFLOW_DATA``, else
  ``./smeflow-data`` of the worker, see :func:`dataflow.catalog.default_data_dir`),
  scan numbers continuing the catalog's own, and a preprocessor recording the sample
  in the beam and, for the powder, the detector geometry
  (:func:`plans.beamline_md.beamline_metadata`);
* the devices of :class:`devices.Beamline`: ``det``, ``rotation``, ``sample_x``,
  ``sample_y``, ``shutter``, ``beam`` and ``sample`` (``mv sample powder`` swaps the
  tomography phantom for the CeO2 powder);
* smeflow's plans (``tomo_scan``, ``fly_tomo_scan``, ``diffraction_scan``,
  ``diffraction_count``) and the standard :mod:`bluesky.plans` and moves
  (``count``, ``scan``, ``grid_scan``, …, ``mv``, ``mvr``, ``sleep``), which refuse a
  device name the queue server does not know (:mod:`plans.qserver.device_names`).

``smeflow queue`` chooses the detector's firmware backend and frame size through
``SMEFLOW_QUEUE_BACKEND`` (``compiled``, ``interp``) and ``SMEFLOW_QUEUE_FRAME``
(``HEIGHTxWIDTH``) in the worker's environment: the queue server offers no other way to
hand a startup module its settings.
"""

from __future__ import annotations

import functools
import inspect
import os
import types
import typing
from collections.abc import Callable
from typing import Any

from bluesky import RunEngine
from bluesky.plan_stubs import sleep
from bluesky.protocols import Movable, Readable

import plans
from dataflow.catalog import Catalog
from devices.beamline import BEAMLINE_NAME, Beamline
from fpga.designs.params import detector_params
from plans.beamline_md import beamline_metadata
from plans.qserver.device_names import naming_devices
from plans.qserver.settings import QueueSettings
from plans.validate import PlanDetector, PlanMotor

_QUEUE_TYPES: dict[Any, Any] = {PlanDetector: Readable, PlanMotor: Movable}
"""smeflow's device protocols → the bluesky protocols the queue server knows, so it
offers (and checks) the names of readable devices and of motors for those parameters."""


def _queue_type(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType):
        return functools.reduce(lambda a, b: a | b, map(_queue_type, annotation.__args__))
    return _QUEUE_TYPES.get(annotation, annotation)


def _queueable(plan: Callable[..., Any]) -> Callable[..., Any]:
    """``plan`` as a generator function with evaluated annotations, which is what the
    queue server lists as a plan (smeflow's plans are functions that check their arguments
    and then return a generator, and their annotations are strings)."""

    @functools.wraps(plan)
    def queued(*args: Any, **kwargs: Any) -> Any:
        return (yield from plan(*args, **kwargs))

    hints = typing.get_type_hints(plan)
    signature = inspect.signature(plan)
    queued.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=_queue_type(hints.get(p.name, p.empty)))
                    for p in signature.parameters.values()],
        return_annotation=inspect.Signature.empty)
    return queued


tomo_scan = _queueable(plans.tomo_scan)
fly_tomo_scan = _queueable(plans.fly_tomo_scan)
diffraction_scan = _queueable(plans.diffraction_scan)
diffraction_count = _queueable(plans.diffraction_count)

_settings = QueueSettings.from_environment(os.environ)
_catalog = Catalog()
RE = RunEngine({"beamline": BEAMLINE_NAME, "source": "smeflow queue"})
_catalog.subscribe(RE)
_beamline = Beamline.create(_catalog.raw_dir, backend=_settings.backend,
                            params=detector_params(*_settings.frame))
RE.preprocessors.append(beamline_metadata(_beamline))

det = _beamline.det
rotation = _beamline.rotation
sample_x = _beamline.sample_x
sample_y = _beamline.sample_y
shutter = _beamline.shutter
beam = _beamline.beam
sample = _beamline.sample

# bluesky's plans, refusing a device name the queue server did not know (it passes one as
# text) with that name and the devices there are, not bluesky's "'str' object has no
# attribute 'name'"
_standard = naming_devices(lambda: [device.name for device in _beamline.devices()])
count = _standard["count"]
grid_scan = _standard["grid_scan"]
list_grid_scan = _standard["list_grid_scan"]
list_scan = _standard["list_scan"]
log_scan = _standard["log_scan"]
mv = _standard["mv"]
mvr = _standard["mvr"]
rel_grid_scan = _standard["rel_grid_scan"]
rel_list_grid_scan = _standard["rel_list_grid_scan"]
rel_list_scan = _standard["rel_list_scan"]
rel_log_scan = _standard["rel_log_scan"]
rel_scan = _standard["rel_scan"]
scan = _standard["scan"]

__all__ = [
    "RE",
    "beam",
    "count",
    "det",
    "diffraction_count",
    "diffraction_scan",
    "fly_tomo_scan",
    "grid_scan",
    "list_grid_scan",
    "list_scan",
    "log_scan",
    "mv",
    "mvr",
    "rel_grid_scan",
    "rel_list_grid_scan",
    "rel_list_scan",
    "rel_log_scan",
    "rel_scan",
    "rotation",
    "sample",
    "sample_x",
    "sample_y",
    "scan",
    "shutter",
    "sleep",
    "tomo_scan",
]
