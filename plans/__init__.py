"""bluesky plans for the simulated beamline.

Standard :mod:`bluesky.plans` (``count``, ``scan``, ``rel_scan``, ``list_scan``,
``grid_scan``, …) work unchanged with the devices of :mod:`devices`; this package adds
the beamline's own experiments:

* :func:`tomo_scan` — darks, flats and projections in one run (streams ``"dark"``,
  ``"flat"``, ``"primary"``), see :mod:`plans.tomo` for the document layout;
* :func:`fly_tomo_scan` — the same run layout, projections taken on the fly during one
  continuous rotation (position-compare triggers), see :mod:`plans.fly_tomo`;
* :func:`diffraction_scan` — frames at explicit sample positions, and
  :func:`diffraction_count`, a validated ``count`` series;
* :func:`publish_mask` / :func:`with_mask` — the detector's pixel mask as the run's
  ``"mask"`` stream (every smeflow plan publishes it), see :mod:`plans.mask`.

Every plan here checks its arguments when it is called and raises
:class:`PlanArgumentError` before yielding a message, so a bad call never opens a run.
"""

from plans.diffraction import diffraction_count, diffraction_scan, grid_positions
from plans.fly_tomo import fly_tomo_scan
from plans.mask import publish_mask, with_mask
from plans.tomo import IMAGE_KEY, TOMO_STREAMS, tomo_angles, tomo_scan
from plans.validate import PlanArgumentError, PlanDetector, PlanMotor

__all__ = [
    "IMAGE_KEY",
    "TOMO_STREAMS",
    "PlanArgumentError",
    "PlanDetector",
    "PlanMotor",
    "diffraction_count",
    "diffraction_scan",
    "fly_tomo_scan",
    "grid_positions",
    "publish_mask",
    "tomo_angles",
    "tomo_scan",
    "with_mask",
]
