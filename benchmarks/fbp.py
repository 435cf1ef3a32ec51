"""Filtered back-projection speed and accuracy against scikit-image's iradon and ASTRA
Toolbox's CPU FBP, same run.

A 512x512 Shepp-Logan phantom (scikit-image's, resized, zero outside the inscribed
circle) is projected with ``skimage.transform.radon`` at 180 angles over 180 degrees.
Both reconstructions use the ramp filter, linear interpolation and ``circle=True``:
``iradon`` (float64, numpy) and ours (:mod:`analysis.fbp`, OpenCL float32, steady state:
program built and angles uploaded before timing). Timings are the best of a few runs
(the machines are shared and noisy), per slice, for one slice and for a stack of 16.
RMSE is against the phantom inside the reconstruction circle. ASTRA (``astra-toolbox``
from PyPI, its CPU ``FBP`` algorithm with the ``linear`` projector and the Ram-Lak filter,
one slice per call as it works) is the second peer; its detector is centred on
``(width - 1) / 2`` rather than ``width // 2``, so its RMSE carries a half-pixel shift.

Figures (``name = value``): ``fbp.512.seconds_per_slice`` (ours, best of the single
slice and the stack), ``fbp.512.stack16_seconds_per_slice``,
``fbp.512.single_seconds_per_slice``, ``fbp.512.iradon_seconds_per_slice``,
``fbp.512.vs_iradon`` (iradon time / ours, higher is better), ``fbp.512.single_vs_iradon``
(the same for one slice at a time, as in live reconstruction), ``fbp.512.rmse``,
``fbp.512.rmse_iradon``, ``fbp.512.rmse_vs_iradon`` (ours / iradon's, lower is better),
``fbp.512.astra_seconds_per_slice``, ``fbp.512.vs_astra`` (ASTRA's time per slice / ours),
``fbp.512.rmse_astra`` and ``fbp.512.stack_vs_single`` (a single slice's time over the
stack's time per slice: at least 1 means a stack is never slower per slice).
Run: ``python benchmarks/fbp.py [--size 512] [--angles 180] [--stack 16] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from analysis import cl
from analysis.fbp import FilteredBackProjection


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The shortest of ``repeat`` timed calls and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def astra_fbp(sinogram: np.ndarray, theta_deg: np.ndarray) -> Callable[[], np.ndarray]:
    """ASTRA's CPU FBP of one ``(angles, width)`` sinogram, prepared: call to reconstruct."""
    try:
        import astra
    except ImportError:
        raise SystemExit("benchmarks/fbp.py: ASTRA Toolbox is missing; install the bench "
                         "extra (pip install -e '.[bench]', or pip install astra-toolbox)"
                         ) from None
    n = sinogram.shape[1]
    vol = astra.create_vol_geom(n, n)
    proj = astra.create_proj_geom("parallel", 1.0, n, np.deg2rad(theta_deg))
    projector = astra.create_projector("linear", proj, vol)
    sino_id = astra.data2d.create("-sino", proj, sinogram)
    rec_id = astra.data2d.create("-vol", vol)
    cfg = astra.astra_dict("FBP")
    cfg.update(ReconstructionDataId=rec_id, ProjectionDataId=sino_id, ProjectorId=projector,
               option={"FilterType": "ram-lak"})
    algorithm = astra.algorithm.create(cfg)

    def run() -> np.ndarray:
        astra.algorithm.run(algorithm)
        return np.asarray(astra.data2d.get(rec_id))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--angles", type=int, default=180)
    parser.add_argument("--stack", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.size
    theta = np.linspace(0.0, 180.0, args.angles, endpoint=False)
    phantom = np.asarray(resize(shepp_logan_phantom(), (n, n), anti_aliasing=True))
    x, y = np.mgrid[:n, :n] - n // 2
    inside = x * x + y * y <= (n // 2) ** 2
    phantom[~inside] = 0.0
    sino_sk = radon(phantom, theta, circle=True)  # (width, angles)
    sino = np.ascontiguousarray(sino_sk.T, dtype=np.float32)  # ours: (angles, width)

    def rmse(image: np.ndarray) -> float:
        return float(np.sqrt(np.mean((image - phantom)[inside] ** 2)))

    rt = cl.runtime()
    plan = FilteredBackProjection(theta, n)
    stack = np.ascontiguousarray(np.broadcast_to(sino, (args.stack, *sino.shape)))
    plan(sino)
    plan(stack)  # warm up: build, caches
    t_one, ours = best_time(lambda: plan(sino), args.repeat)
    t_stack, ours_stack = best_time(lambda: plan(stack), args.repeat)
    if not np.allclose(ours_stack, ours[None], rtol=0, atol=1e-5 * np.abs(ours).max()):
        raise SystemExit("stack reconstruction differs from the single slice")
    t_iradon, theirs = best_time(
        lambda: iradon(sino_sk, theta, filter_name="ramp", interpolation="linear",
                       circle=True), max(1, args.repeat - 1))
    astra_run = astra_fbp(sino, theta)
    astra_run()
    t_astra, astra_image = best_time(astra_run, max(1, args.repeat - 1))
    ours_per_slice = min(t_one, t_stack / args.stack)
    print(f"device: {rt.name}")
    print(f"{n}x{n}, {args.angles} angles, ramp filter, linear interpolation, circle")
    print(f"ours, one slice:          {t_one * 1e3:8.1f} ms/slice")
    print(f"ours, stack of {args.stack:<3d}:      {t_stack / args.stack * 1e3:8.1f} ms/slice")
    print(f"skimage iradon:           {t_iradon * 1e3:8.1f} ms/slice")
    print(f"ASTRA FBP (CPU):          {t_astra * 1e3:8.1f} ms/slice (RMSE {rmse(astra_image):.6f})")
    print(f"RMSE vs phantom (inside circle): ours {rmse(ours):.6f}, "
          f"iradon {rmse(theirs):.6f}; max |ours - iradon| = "
          f"{np.abs(ours - theirs).max():.2e} (image max {np.abs(theirs).max():.3f})")
    figures = {
        f"fbp.{n}.seconds_per_slice": ours_per_slice,
        f"fbp.{n}.single_seconds_per_slice": t_one,
        f"fbp.{n}.stack{args.stack}_seconds_per_slice": t_stack / args.stack,
        f"fbp.{n}.iradon_seconds_per_slice": t_iradon,
        f"fbp.{n}.vs_iradon": t_iradon / ours_per_slice,
        f"fbp.{n}.single_vs_iradon": t_iradon / t_one,
        f"fbp.{n}.rmse": rmse(ours),
        f"fbp.{n}.rmse_iradon": rmse(theirs),
        f"fbp.{n}.rmse_vs_iradon": rmse(ours) / rmse(theirs),
        f"fbp.{n}.astra_seconds_per_slice": t_astra,
        f"fbp.{n}.vs_astra": t_astra / ours_per_slice,
        f"fbp.{n}.rmse_astra": rmse(astra_image),
        f"fbp.{n}.stack_vs_single": t_one / (t_stack / args.stack),
    }
    for name, value in figures.items():
        print(f"{name} = {value:.6g}")


if __name__ == "__main__":
    main()
