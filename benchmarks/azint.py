"""Azimuthal integration speed: ours (OpenCL) against pyFAI, in the same run.

For 1024×1024 and 2162×2068 float32 frames, 1000 bins, unit ``2th_deg``, no corrections
and no error model (pyFAI's defaults for a plain ``integrate1d``), steady state (the
geometry-dependent tables are built before timing): frames/s of
``analysis.azint.AzimuthalIntegrator`` (numpy frames, end to end: frame to device, kernel,
result back), of pyFAI's fastest CPU method (the faster of ``("no","csr","cython")`` and
``("no","histogram","cython")``), and of pyFAI ``("no","csr","opencl")`` on the OpenCL
device our runtime picked. The memory-read bound is a trivial OpenCL kernel that reads a
frame-sized buffer once (sum of float4s), in frames/s. Results are checked against pyFAI
before timing. Figures are ``name = value`` lines; ``….vs_pyfai`` is ours divided by
pyFAI's fastest CPU method. Run: ``python benchmarks/azint.py [--seconds S]``.
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
SIZES = {"1024": (1024, 1024), "2162x2068": (2162, 2068)}
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


def rate(fn: Callable[[], Any], seconds: float) -> float:
    """Frames per second of ``fn``: best of three timed runs of about ``seconds`` / 3 each,
    after a warm-up call (the machine is shared and noisy)."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    n = max(3, int(seconds / 3 / once))
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def device_ids(rt: cl.Runtime) -> tuple[int, int]:
    """(platform, device) indices of ``rt``'s device, for pyFAI's OpenCL target."""
    import pyopencl

    for p, plat in enumerate(pyopencl.get_platforms()):
        for d, dev in enumerate(plat.get_devices()):
            if dev.int_ptr == rt.device.int_ptr:
                return p, d
    raise RuntimeError(f"device {rt.name} not found among the OpenCL platforms")


def disambiguate_platforms(platform_id: int) -> None:
    """Make pyFAI find our OpenCL device by name.

    pyFAI (through silx) looks its device up by platform *name* and takes the last
    platform of that name; with two PoCL platforms installed (the pyopencl wheel's, which
    cannot compile on this CPU, and Debian's) it lands on the wrong one. Renaming the other
    same-named platforms in silx's registry leaves only ours under that name."""
    from silx.opencl.common import ocl

    wanted = ocl.platforms[platform_id]
    for plat in ocl.platforms:
        if plat is not wanted and plat.name == wanted.name:
            plat.name = f"{plat.name} (#{plat.id}, not used)"


def memory_bound(rt: cl.Runtime, nbytes: int, seconds: float) -> float:
    """Frames/s of reading a buffer of ``nbytes`` once with all compute units."""
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

    return rate(once, seconds)


def main() -> None:
    """Measure and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0,
                    help="time per measured method and size (default 4)")
    args = ap.parse_args()
    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator as PyFAI
    from pyFAI.method_registry import IntegrationMethod

    rt = cl.runtime()
    platform_id, device_id = device_ids(rt)
    disambiguate_platforms(platform_id)
    print(f"OpenCL device: {rt.name} (platform {platform_id}, device {device_id}, "
          f"{rt.device.max_compute_units} compute units)")
    print(f"integrate1d, {NPT} bins, 2th_deg, float32 frames, no corrections, steady state")
    figures: dict[str, float] = {}
    for label, shape in SIZES.items():
        g = PoniGeometry(dist=0.2, poni1=shape[0] * 75e-6 * 0.45, poni2=shape[1] * 75e-6 * 0.55,
                         rot1=0.02, rot2=-0.01, shape=shape)
        frame = np.random.default_rng(0).poisson(100.0, shape).astype(np.float32)
        ours = AzimuthalIntegrator(g)
        theirs = PyFAI(dist=g.dist, poni1=g.poni1, poni2=g.poni2, rot1=g.rot1, rot2=g.rot2,
                       detector=Detector(g.pixel1, g.pixel2, max_shape=shape),
                       wavelength=g.wavelength)
        check = theirs.integrate1d(frame, NPT, unit="2th_deg", method=("no", "csr", "cython"),
                                   correctSolidAngle=False)
        mine = ours.integrate1d(frame, NPT, unit="2th_deg", correct_solid_angle=False,
                                error_model=None)
        has = check.count > 0
        worst = np.max(np.abs(mine.intensity[has] - check.intensity[has])
                       / np.abs(check.intensity[has]))
        if worst > 1e-4:
            raise SystemExit(f"{label}: WRONG RESULT, relative difference {worst:.2e} "
                             "against pyFAI")

        run_ours = partial(ours.integrate1d, frame, NPT, unit="2th_deg",
                           correct_solid_angle=False, error_model=None)
        run_ours_poisson = partial(ours.integrate1d, frame, NPT, unit="2th_deg",
                                   correct_solid_angle=False)

        def run_pyfai(method: Any, ai: Any = theirs, frame: Any = frame) -> Callable[[], None]:
            return partial(ai.integrate1d, frame, NPT, unit="2th_deg", method=method,
                           correctSolidAngle=False)

        ours_fps = rate(run_ours, args.seconds)
        poisson_fps = rate(run_ours_poisson, args.seconds / 2)
        cpu = {m: rate(run_pyfai(m), args.seconds)
               for m in (("no", "csr", "cython"), ("no", "histogram", "cython"))}
        best_method = max(cpu, key=lambda m: cpu[m])
        ocl_method = IntegrationMethod.select_method(
            dim=1, split="no", algo="csr", impl="opencl",
            target=(platform_id, device_id))[0]
        ocl_fps = rate(run_pyfai(ocl_method), args.seconds)
        bound = memory_bound(rt, frame.nbytes, args.seconds / 2)
        print(f"\n{label} ({shape[0]}x{shape[1]}), agreement with pyFAI: {worst:.1e} relative")
        print(f"  ours (OpenCL)                    {ours_fps:9.0f} frames/s")
        print(f"  ours with Poisson errors         {poisson_fps:9.0f} frames/s")
        for m, fps in cpu.items():
            print(f"  pyFAI {m!s:30s} {fps:9.1f} frames/s")
        print(f"  pyFAI {ocl_method.method[1:4]!s:30s} {ocl_fps:9.1f} frames/s (PoCL)")
        print(f"  memory-read bound                {bound:9.0f} frames/s")
        print(f"  ours / pyFAI fastest CPU {best_method}: {ours_fps / cpu[best_method]:.1f}x;"
              f" fraction of memory bound {ours_fps / bound:.2f}")
        figures[f"azint.{label}.frames_per_s"] = ours_fps
        figures[f"azint.{label}.vs_pyfai"] = ours_fps / cpu[best_method]
        figures[f"azint.{label}.poisson.frames_per_s"] = poisson_fps
        figures[f"azint.{label}.pyfai.frames_per_s"] = cpu[best_method]
        figures[f"azint.{label}.pyfai_opencl.frames_per_s"] = ocl_fps
        figures[f"azint.{label}.vs_pyfai_opencl"] = ours_fps / ocl_fps
        figures[f"azint.{label}.memory_bound.frames_per_s"] = bound
        figures[f"azint.{label}.fraction_of_memory_bound"] = ours_fps / bound
    print()
    for name, value in figures.items():
        print(f"{name} = {value:.4g}")


if __name__ == "__main__":
    main()
