// Dark/flat and dark/gain corrections of detector frames (see analysis/correct.py).
// RAW_T is the frame's pixel type (ushort or float), set with -DRAW_T=... at build time.
// Global size: (pixels per frame rounded up, frames); references are one frame long.

__kernel void flat_denominator(__global const float *dark, __global const float *flat,
                               __global const uchar *mask, const int use_mask,
                               const uint npix, __global float *den)
{
    const uint p = get_global_id(0);
    if (p >= npix) return;
    const float d = flat[p] - dark[p];
    // "d > 0" is false for NaN too: dead, unlit and masked pixels all get 0 = invalid.
    const bool ok = d > 0.0f && (use_mask == 0 || mask[p] == 0);
    den[p] = ok ? d : 0.0f;
}

__kernel void gain_validate(__global const float *gain, __global const uchar *mask,
                            const int use_mask, const uint npix, __global float *out)
{
    const uint p = get_global_id(0);
    if (p >= npix) return;
    const float g = gain[p];
    const bool ok = isfinite(g) && (use_mask == 0 || mask[p] == 0);
    out[p] = ok ? g : NAN;
}

__kernel void flat_field(__global const RAW_T *raw, __global const float *dark,
                         __global const float *den, const float fill, const uint npix,
                         __global float *out)
{
    const uint p = get_global_id(0);
    if (p >= npix) return;
    const size_t q = get_global_id(1) * (size_t)npix + p;
    const float dn = den[p];
    out[q] = dn > 0.0f ? ((float)raw[q] - dark[p]) / dn : fill;
}

__kernel void dark_gain(__global const RAW_T *raw, __global const float *dark,
                        __global const float *gain, const float fill, const uint npix,
                        __global float *out)
{
    const uint p = get_global_id(0);
    if (p >= npix) return;
    const size_t q = get_global_id(1) * (size_t)npix + p;
    const float g = gain[p];
    out[q] = isnan(g) ? fill : ((float)raw[q] - dark[p]) * g;
}
