"""A simulated storage-ring beam-current monitor that can lose and regain the beam.

``current`` (mA) sits at ``nominal_current`` with small Gaussian noise (top-up mode);
``available`` is 1 while there is beam and 0 after :meth:`BeamMonitor.drop_beam`. Both are
ordinary ophyd signals whose subscriptions run on every update, so bluesky suspenders
work on them unchanged::

    RE.install_suspender(SuspendFloor(beam.current, 100, resume_thresh=350))
    RE.install_suspender(SuspendBoolLow(beam.available))

Updates come from two places: a background thread that refreshes the noisy current every
``update_period`` wall seconds (``None`` disables it), and :meth:`drop_beam` /
:meth:`restore_beam`, which update both signals at once. While the beam is down the
thread also re-posts ``available`` = 0 on every update, as a PV that posts monitors on
every scan: a bluesky suspender gives up on a trip when the RunEngine's loop is busy for
more than 0.1 s at that moment (a first ``stage()``, a catalog write), and the next
update trips it again. The noise is drawn from a seeded
generator, so a run is reproducible up to thread timing.

The monitor remembers the current it published and when (the last :data:`HISTORY`
changes, ``devices.state_history``): :meth:`BeamMonitor.beam_factor` at a wall time in the
past is what a frame triggered then but computed later must see (``Scene.beam_factor(t)``).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Kind
from ophyd.signal import InternalSignal

from .checked_signal import CheckedSignal, finite_number
from .state_history import StateHistory

__all__ = ["HISTORY", "BeamMonitor"]

HISTORY = 4096
"""Published currents a monitor keeps for :meth:`BeamMonitor.beam_factor` at a past time
(at least; 6.8 minutes of updates at the default ``update_period``, a beam that stays
down or noise-free records only its changes)."""


class BeamMonitor(Device):  # type: ignore[misc]
    """Ring current (mA) and a beam-available flag, with scripted beam loss.

    Parameters
    ----------
    name
        Device name (signals are ``<name>_current`` and ``<name>_available``).
    nominal_current
        Ring current with beam, mA.
    noise
        Standard deviation of the current noise, mA.
    update_period
        Wall seconds between noise updates from the background thread; ``None`` for no
        thread (the signals then change only on drop/restore).
    seed
        Seed of the noise generator.
    """

    current = Cpt(InternalSignal, value=0.0, kind=Kind.hinted)
    available = Cpt(InternalSignal, value=1, kind=Kind.normal)
    nominal_current = Cpt(CheckedSignal, value=400.0, kind=Kind.config,
                          check=finite_number("mA", 0.0, inclusive=False))
    noise = Cpt(CheckedSignal, value=0.05, kind=Kind.config, check=finite_number("mA", 0.0))

    def __init__(
        self,
        *,
        name: str,
        nominal_current: float = 400.0,
        noise: float = 0.05,
        update_period: float | None = 0.1,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if not (math.isfinite(nominal_current) and nominal_current > 0):
            raise ValueError(
                f"beam monitor {name!r}: nominal_current must be > 0 mA, got {nominal_current!r}"
            )
        if not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"beam monitor {name!r}: noise must be >= 0 mA, got {noise!r}")
        if update_period is not None and not update_period > 0:
            raise ValueError(
                f"beam monitor {name!r}: update_period must be > 0 s or None, "
                f"got {update_period!r}"
            )
        self.nominal_current.put(float(nominal_current))
        self.noise.put(float(noise))
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._beam_up = True
        self._restore_timer: threading.Timer | None = None
        self._halt = threading.Event()
        self._history = StateHistory(f"beam monitor {name!r}", float(nominal_current),
                                     time.time(), HISTORY)
        self._update()
        self._thread: threading.Thread | None = None
        if update_period is not None:
            self._thread = threading.Thread(
                target=self._run, args=(float(update_period),), name=f"{name}-updates",
                daemon=True,
            )
            self._thread.start()

    @property
    def beam_up(self) -> bool:
        """True while the ring has beam."""
        with self._lock:
            return self._beam_up

    def beam_factor(self, t: float | None = None) -> float:
        """Current over nominal current: the factor by which photon flux scales (0 if down),
        now or at wall time ``t`` (seconds since the epoch): the current published last
        at or before ``t``.

        Raises ``devices.state_history.StateHistoryError`` for a time older than the last
        :data:`HISTORY` changes of the current (forgotten)."""
        if t is not None:
            return max(self._history.at(t), 0.0) / float(self.nominal_current.get())
        with self._lock:
            if not self._beam_up:
                return 0.0
            return max(float(self.current.get()), 0.0) / float(self.nominal_current.get())

    def _sample_current(self) -> float:
        if not self._beam_up:
            return 0.0
        return float(self.nominal_current.get()) + float(self.noise.get()) * float(
            self._rng.standard_normal()
        )

    def _update(self) -> None:
        """Publish a fresh current and the availability flag (runs subscriptions)."""
        with self._lock:
            current = self._sample_current()
            self._history.record(current, time.time())
            self.current.put(current, internal=True)
            flag = 1 if self._beam_up else 0
            if self.available.get() != flag or not self._beam_up:
                self.available.put(flag, internal=True)

    def _run(self, period: float) -> None:
        while not self._halt.wait(period):
            self._update()

    def drop_beam(self, duration: float | None = None) -> None:
        """Lose the beam now: current 0 mA, ``available`` 0.

        Parameters
        ----------
        duration
            Wall seconds after which the beam comes back by itself; ``None`` keeps it
            down until :meth:`restore_beam`.
        """
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise ValueError(
                f"beam monitor {self.name!r}: drop duration must be > 0 s or None, "
                f"got {duration!r}"
            )
        with self._lock:
            self._cancel_restore()
            self._beam_up = False
            self._update()
            if duration is not None:
                timer = threading.Timer(duration, self.restore_beam)
                timer.daemon = True
                self._restore_timer = timer
                timer.start()

    def restore_beam(self) -> None:
        """Bring the beam back to the nominal current (``available`` 1)."""
        with self._lock:
            self._cancel_restore()
            self._beam_up = True
            self._update()

    def _cancel_restore(self) -> None:
        if self._restore_timer is not None:
            self._restore_timer.cancel()
            self._restore_timer = None

    def stop(self, *, success: bool = False) -> None:
        """Nothing to stop: a monitor has no motion."""

    def destroy(self) -> None:
        """Stop the update thread and any pending restore, then release the device."""
        self._halt.set()
        with self._lock:
            self._cancel_restore()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        super().destroy()
