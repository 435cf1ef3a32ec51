// Tomography reduction: stack averages, -log, sinogram reordering (see analysis/tomo.py).
// Build option: -DPIX_T=ushort|float (the input frames' pixel type).
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

// out[p] = mean over the n frames of frames[f, p]; global size >= npix.
__kernel void mean_stack(__global const PIX_T *frames, const uint n, const uint npix,
                         __global float *out)
{
    const uint p = get_global_id(0);
    if (p >= npix) return;
    double s = 0.0;
    for (uint f = 0; f < n; ++f) s += (double)frames[(size_t)f * npix + p];
    out[p] = (float)(s / n);
}

// -log(max(t, floor)) in place; NaN stays NaN.
__kernel void minus_log(__global float *t, const float floor_, const ulong n)
{
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const float v = t[i];
    t[i] = isnan(v) ? v : -log(fmax(v, floor_));
}

// (angles, rows, cols) -> (rows, angles, cols); global size (cols, angles, rows).
__kernel void to_sinograms(__global const float *proj, const uint angles, const uint rows,
                           const uint cols, __global float *sino)
{
    const uint c = get_global_id(0), a = get_global_id(1), r = get_global_id(2);
    if (c >= cols) return;
    sino[((size_t)r * angles + a) * cols + c] = proj[((size_t)a * rows + r) * cols + c];
}
