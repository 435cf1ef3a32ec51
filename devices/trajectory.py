"""Motion profiles of simulated stages: piecewise constant-acceleration trajectories.

A :class:`Trajectory` is a chain of :class:`Segment` s (each starting at a time, position
and velocity, under a constant acceleration) and then rest at ``end``; :func:`trapezoid`
builds the point-to-point move of a stage with a velocity and acceleration limit. Pure
kinematics, no ophyd: ``devices.motion`` drives its motors along them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Segment", "Trajectory", "trapezoid"]


@dataclass(frozen=True)
class Segment:
    """Constant-acceleration piece of a trajectory, in physical seconds from its start."""

    t0: float
    x0: float
    v0: float
    a: float


@dataclass(frozen=True)
class Trajectory:
    """Piecewise constant-acceleration motion in physical time.

    Parameters
    ----------
    segments
        Pieces in time order; piece ``k`` is valid from its ``t0`` to the next piece's.
    duration
        Physical seconds until the motion ends; afterwards the position is ``end``.
    end
        Final position.
    """

    segments: tuple[Segment, ...]
    duration: float
    end: float

    @staticmethod
    def at_rest(position: float) -> Trajectory:
        """A trajectory that stays at ``position`` forever."""
        return Trajectory((Segment(0.0, position, 0.0, 0.0),), 0.0, position)

    def position(self, t: float) -> float:
        """Position at physical time ``t`` seconds after the start (clamped to the ends)."""
        if t >= self.duration:
            return self.end
        seg = self.segments[0]
        for candidate in self.segments:
            if candidate.t0 <= t:
                seg = candidate
            else:
                break
        dt = max(t - seg.t0, 0.0)
        return seg.x0 + seg.v0 * dt + 0.5 * seg.a * dt * dt

    def then(self, other: Trajectory) -> Trajectory:
        """This trajectory followed by ``other`` (which must start where this one ends)."""
        shifted = tuple(
            Segment(s.t0 + self.duration, s.x0, s.v0, s.a) for s in other.segments
        )
        own = tuple(s for s in self.segments if s.t0 < self.duration)
        return Trajectory(own + shifted, self.duration + other.duration, other.end)


def trapezoid(start: float, end: float, velocity: float, acceleration: float) -> Trajectory:
    """Point-to-point move at rest at both ends with a trapezoidal velocity profile.

    Accelerates at ``acceleration`` up to ``velocity``, cruises, decelerates. When the
    distance is too short to reach ``velocity`` the profile is triangular.
    """
    if not (velocity > 0 and acceleration > 0):
        raise ValueError(
            f"trapezoid needs velocity > 0 and acceleration > 0, got velocity={velocity}, "
            f"acceleration={acceleration}"
        )
    distance = abs(end - start)
    if distance == 0.0:
        return Trajectory.at_rest(end)
    sign = 1.0 if end > start else -1.0
    t_acc = velocity / acceleration
    d_acc = 0.5 * acceleration * t_acc * t_acc
    if 2.0 * d_acc >= distance:
        t_acc = math.sqrt(distance / acceleration)
        v_peak = acceleration * t_acc
        triangle = (
            Segment(0.0, start, 0.0, sign * acceleration),
            Segment(t_acc, start + sign * 0.5 * distance, sign * v_peak, -sign * acceleration),
        )
        return Trajectory(triangle, 2.0 * t_acc, end)
    t_cruise = (distance - 2.0 * d_acc) / velocity
    segs = (
        Segment(0.0, start, 0.0, sign * acceleration),
        Segment(t_acc, start + sign * d_acc, sign * velocity, 0.0),
        Segment(t_acc + t_cruise, end - sign * d_acc, sign * velocity, -sign * acceleration),
    )
    return Trajectory(segs, 2.0 * t_acc + t_cruise, end)
