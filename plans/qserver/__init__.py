"""The simulated beamline behind a bluesky-queueserver plan queue.

:mod:`plans.qserver.startup` is the startup profile the RE Manager's worker imports (the
RunEngine writing into the default catalog, every device of :class:`devices.Beamline`,
smeflow's plans and the standard :mod:`bluesky.plans`); ``user_group_permissions.yaml``
beside it lets the ``primary`` and ``admin`` groups use all of them. :mod:`plans.qserver.cli`
is ``smeflow queue``, which starts Redis when none is running and the RE Manager with
this profile, in the foreground.
"""

from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent
"""The folder holding the startup module and the permissions file."""

STARTUP_MODULE = "plans.qserver.startup"
"""What ``start-re-manager --startup-module`` is given."""

PERMISSIONS = PROFILE_DIR / "user_group_permissions.yaml"
"""The user groups and the plans and devices each may use."""

__all__ = ["PERMISSIONS", "PROFILE_DIR", "STARTUP_MODULE"]
