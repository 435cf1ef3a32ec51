"""Azimuthal integration speed: ours (OpenCL) against pyFAI, in the same run.

Geometry: a tilted detector, 1000 bins, unit ``2th_deg``, float32 Poisson frames, no
corrections, steady state (matrices and kernels built before timing). Each figure compares
the same work on both sides against pyFAI's fastest CPU method for it (the faster of its
``csr`` and ``histogram`` Cython engines):

* ``azint.1024.vs_pyfai`` — 1024×1024, no pixel splitting, no error model (plain);
* ``azint.1024.poisson.vs_pyfai`` — the same with Poisson errors on both sides;
* ``azint.1024.bbox.vs_pyfai`` — bounding-box pixel splitting on both sides (pyFAI's
  default method);
* ``azint.2162x2068.vs_pyfai`` — plain, an Eiger2 4M-sized frame;
* ``azint.1024.stack.frames_per_s`` — plain, a stack of 100 distinct frames in one call;
* ``azint.1024.fraction_of_memory_bound`` — plain frames/s over the frames/s of a trivial
  kernel that only reads a frame once (sum of float4s with every compute unit); the two
  are timed alternately, several rounds, best of each, to cancel drifts of a shared
  machine's load.

Our frames/s are end to end (numpy frame in, result object out). Results are checked
against pyFAI before timing. Figures are ``name = value`` lines; ``….vs_pyfai`` is ours
divided by pyFAI's. Run: ``python benchmarks/azint.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from analysis import cl
from analysis.azint import AzimuthalIntegrator
from geometry import PoniGeometry

NPT = 1000
STACK = 100
_READ = """
__kernel void read_sum(__global const float4 *restrict a, const uint n4,
                       __global float *restrict out)
{
    /* work-item g reads a[g], a[g + G], ...: neighbouring work-items read neighbouring
       addresses, which PoCL turns into vector loads across the work-group */
    const uint g = get_global_id(0);
    const uint stride = get_global_size(0);
    float4 s = (float4)(0.0f);
    for (uint i = g; i < n4; i += stride)
        s += a[i];
    out[g] = s.x + s.y + s.z + s.w;
}
"""


def rate(fn: Callable[[], Any], seconds: float, per_call: int = 1) -> float:
    """Frames per second of ``fn`` (``per_call`` frames a call): best of three timed runs
    of about ``seconds`` / 3 each, after a warm-up call (the machine is shared and noisy)."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    n = max(2, int(seconds / 3 / once))
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = max(best, n * per_call / (time.perf_counter() - start))
    return best


def interleaved(a: Callable[[], Any], b: Callable[[], Any], seconds: float,
                rounds: int = 5) -> tuple[float, float]:
    """Best frames/s of ``a`` and of ``b``, timed alternately for ``rounds`` rounds."""
    best_a = best_b = 0.0
    for _ in range(rounds):
        best_a = max(best_a, rate(a, seconds / rounds))
        best_b = max(best_b, rate(b, seconds / rounds))
    return best_a, best_b


def memory_reader(rt: cl.Runtime, nbytes: int) -> Callable[[], None]:
    """A call that reads a buffer of ``nbytes`` once with all compute units."""
    import pyopencl

    prog = cl.build(rt, _READ)
    kernel = pyopencl.Kernel(prog, "read_sum")
    n4 = nbytes // 16
    parts = max(1, int(rt.device.max_compute_units)) * 4096
    buf = pyopencl.Buffer(rt.context, pyopencl.mem_flags.READ_ONLY
                          | pyopencl.mem_flags.COPY_HOST_PTR,
                          hostbuf=np.ones(n4 * 4, np.float32))
    out = pyopencl.Buffer(rt.context, pyopencl.mem_flags.WRITE_ONLY, parts * 4)
    host = np.empty(parts, np.float32)

    def once() -> None:
        kernel(rt.queue, (parts,), (256,), buf, np.uint32(n4), out)
        pyopencl.enqueue_copy(rt.queue, host, out)

    return once


def geometry(shape: tuple[int, int]) -> PoniGeometry:
    """The benchmark's tilted geometry for a detector of ``shape`` (75 µm pixels)."""
    return PoniGeometry(dist=0.2, poni1=shape[0] * 75e-6 * 0.45,
                        poni2=shape[1] * 75e-6 * 0.55, rot1=0.02, rot2=-0.01, shape=shape,
                        wavelength=1e-10)


def pyfai_of(g: PoniGeometry) -> Any:
    """pyFAI's integrator for ``g``."""
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator as PyFAI

    return PyFAI(dist=g.dist, poni1=g.poni1, poni2=g.poni2, rot1=g.rot1, rot2=g.rot2,
                 detector=Detector(g.pixel1, g.pixel2, max_shape=g.shape),
                 wavelength=g.wavelength)


def check(ours: Any, theirs: Any, label: str) -> float:
    """Worst relative difference of intensity (and sigma) on covered bins; exits on > 1e-4."""
    has = theirs.count > 0
    worst = float(np.max(np.abs(ours.intensity[has] - theirs.intensity[has])
                         / np.abs(theirs.intensity[has])))
    if theirs.sigma is not None:
        worst = max(worst, float(np.max(np.abs(ours.sigma[has] - theirs.sigma[has])
                                        / np.abs(theirs.sigma[has]))))
    if worst > 1e-4:
        raise SystemExit(f"{label}: WRONG RESULT, relative difference {worst:.2e} "
                         "against pyFAI")
    return worst


def compare(label: str, g: PoniGeometry, frame: np.ndarray, split: str,
            error_model: str | None, seconds: float) -> tuple[float, float, str]:
    """(ours frames/s, pyFAI's best CPU frames/s, its method) for one configuration."""
    ours = AzimuthalIntegrator(g)
    theirs = pyfai_of(g)
    kw = dict(unit="2th_deg", correctSolidAngle=False, error_model=error_model)
    agreement = check(ours.integrate1d(frame, NPT, method=split, **kw),
                      theirs.integrate1d(frame, NPT, method=(split, "csr", "cython"), **kw),
                      label)
    ours_fps = rate(partial(ours.integrate1d, frame, NPT, method=split, **kw), seconds)
    cpu = {algo: rate(partial(theirs.integrate1d, frame, NPT,
                              method=(split, algo, "cython"), **kw), seconds)
           for algo in ("csr", "histogram")}
    best = max(cpu, key=lambda a: cpu[a])
    print(f"\n{label}: agreement with pyFAI {agreement:.1e} relative")
    print(f"  {'ours (OpenCL)':36s} {ours_fps:9.0f} frames/s")
    for algo, fps in cpu.items():
        name = f"pyFAI ({split}, {algo}, cython)"
        print(f"  {name:36s} {fps:9.1f} frames/s")
    return ours_fps, cpu[best], f"({split}, {best}, cython)"


def main() -> None:
    """Measure and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0,
                    help="time per measured method and configuration (default 4)")
    a = ap.parse_args()
    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    rt = cl.runtime()
    print(f"OpenCL device: {rt.name} ({rt.device.max_compute_units} compute units)")
    print(f"integrate1d, {NPT} bins, 2th_deg, float32 frames, no corrections, steady state")
    rng = np.random.default_rng(0)
    figures: dict[str, float] = {}
    g1 = geometry((1024, 1024))
    frame = rng.poisson(100.0, g1.shape).astype(np.float32)
    for key, split, model in (("azint.1024", "no", None),
                              ("azint.1024.poisson", "no", "poisson"),
                              ("azint.1024.bbox", "bbox", None)):
        ours, theirs, method = compare(f"{key} (1024x1024, split {split}, error model "
                                       f"{model})", g1, frame, split, model, a.seconds)
        figures[f"{key}.frames_per_s"] = ours
        figures[f"{key}.pyfai.frames_per_s"] = theirs
        figures[f"{key}.vs_pyfai"] = ours / theirs
        print(f"  ours / pyFAI {method}: {ours / theirs:.1f}x")
    g4 = geometry((2162, 2068))
    big = rng.poisson(100.0, g4.shape).astype(np.float32)
    ours4, theirs4, method4 = compare("azint.2162x2068 (split no, error model None)", g4,
                                      big, "no", None, a.seconds)
    figures["azint.2162x2068.frames_per_s"] = ours4
    figures["azint.2162x2068.pyfai.frames_per_s"] = theirs4
    figures["azint.2162x2068.vs_pyfai"] = ours4 / theirs4
    print(f"  ours / pyFAI {method4}: {ours4 / theirs4:.1f}x")

    ai = AzimuthalIntegrator(g1)
    stack = rng.poisson(100.0, (STACK, *g1.shape)).astype(np.float32)
    kw = dict(unit="2th_deg", correctSolidAngle=False, method="no")
    one = ai.integrate1d(stack[7], NPT, **kw)
    if not np.array_equal(ai.integrate1d(stack, NPT, **kw).intensity[7], one.intensity):
        raise SystemExit("stack: WRONG RESULT, frame 7 differs from its single-frame result")
    stack_fps = rate(partial(ai.integrate1d, stack, NPT, **kw), a.seconds, per_call=STACK)
    print(f"\nazint.1024.stack: {STACK} frames per call   {stack_fps:9.0f} frames/s")
    figures["azint.1024.stack.frames_per_s"] = stack_fps

    plain, bound = interleaved(partial(ai.integrate1d, frame, NPT, **kw),
                               memory_reader(rt, frame.nbytes), 2 * a.seconds)
    print(f"memory-read bound (one read of a 1024x1024 float32 frame) {bound:9.0f} frames/s;"
          f" ours plain {plain:.0f} frames/s, timed alternately")
    figures["azint.1024.memory_bound.frames_per_s"] = bound
    figures["azint.1024.fraction_of_memory_bound"] = plain / bound
    print()
    for name, value in figures.items():
        print(f"{name} = {value:.4g}")


if __name__ == "__main__":
    main()
