// Per-frame statistics and histograms (see analysis/stats.py).
// Build options: -DPIX_T=ushort|float, -DIS_INT=1|0, -DWG=<work-group size>.
// Global size (groups * WG, frames), local (WG, 1): group g of frame f reads the pixels
// g*WG + lid, + groups*WG, ... of that frame and writes one partial result at f*groups + g.
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

__kernel void frame_moments(__global const PIX_T *frames, const uint npix,
                            const double saturation,
                            __global ulong *isum, __global ulong *isq,
                            __global double *fmean, __global double *fm2,
                            __global uint *count, __global float *vmin,
                            __global float *vmax, __global uint *nsat)
{
    const uint lid = get_local_id(0);
    const uint stride = get_global_size(0);
    const size_t base = get_global_id(1) * (size_t)npix;
    const size_t part = get_global_id(1) * get_num_groups(0) + get_group_id(0);
    __local float lmin[WG], lmax[WG];
    __local uint lcount[WG], lsat[WG];
    float mn = INFINITY, mx = -INFINITY;
    uint n = 0, sat = 0;
#if IS_INT
    __local ulong ls[WG], lq[WG];
    ulong s = 0, q = 0;
    for (uint p = get_global_id(0); p < npix; p += stride) {
        const uint v = frames[base + p];
        s += v;
        q += (ulong)v * v;
        n += 1;
        mn = fmin(mn, (float)v);
        mx = fmax(mx, (float)v);
        sat += (double)v >= saturation;
    }
    ls[lid] = s; lq[lid] = q;
#else
    // Welford's update per work-item, Chan's pairwise merge across the group: the
    // variance keeps its precision whatever the mean (no sum of squares cancellation).
    __local double lm[WG], l2[WG];
    double m = 0.0, m2 = 0.0;
    for (uint p = get_global_id(0); p < npix; p += stride) {
        const float v = frames[base + p];
        if (isnan(v)) continue;
        n += 1;
        const double x = v;
        const double d = x - m;
        m += d / n;
        m2 += d * (x - m);
        mn = fmin(mn, v);
        mx = fmax(mx, v);
        sat += x >= saturation;
    }
    lm[lid] = m; l2[lid] = m2;
#endif
    lmin[lid] = mn; lmax[lid] = mx; lcount[lid] = n; lsat[lid] = sat;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint span = WG / 2; span > 0; span >>= 1) {
        if (lid < span) {
            const uint o = lid + span;
#if IS_INT
            ls[lid] += ls[o];
            lq[lid] += lq[o];
#else
            const double na = lcount[lid], nb = lcount[o], nt = na + nb;
            if (nb > 0.0) {
                const double delta = lm[o] - lm[lid];
                lm[lid] += delta * (nb / nt);
                l2[lid] += l2[o] + delta * delta * (na * nb / nt);
            }
#endif
            lcount[lid] += lcount[o];
            lsat[lid] += lsat[o];
            lmin[lid] = fmin(lmin[lid], lmin[o]);
            lmax[lid] = fmax(lmax[lid], lmax[o]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
#if IS_INT
        isum[part] = ls[0];
        isq[part] = lq[0];
#else
        fmean[part] = lm[0];
        fm2[part] = l2[0];
#endif
        count[part] = lcount[0];
        nsat[part] = lsat[0];
        vmin[part] = lmin[0];
        vmax[part] = lmax[0];
    }
}

// Histogram with numpy's bins: bin k holds edges[k] <= x < edges[k+1], the last bin also
// holds x == edges[nbins]; NaN and values outside are not counted. The first guess from
// the bin width is corrected against the edges, as numpy does, so counts agree exactly.
// hist is [frames, nbins], zeroed by the caller; with use_local the group counts into
// local memory (nbins words) first.
__kernel void frame_histogram(__global const PIX_T *frames, const uint npix,
                              __global const double *edges, const uint nbins,
                              const double scale, const int use_local,
                              __global uint *hist, __local uint *lhist)
{
    const uint lid = get_local_id(0);
    const uint stride = get_global_size(0);
    const size_t base = get_global_id(1) * (size_t)npix;
    __global uint *fhist = hist + get_global_id(1) * (size_t)nbins;
    const double lo = edges[0], hi = edges[nbins];
    if (use_local) {
        for (uint b = lid; b < nbins; b += WG) lhist[b] = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint p = get_global_id(0); p < npix; p += stride) {
        const double x = (double)frames[base + p];
        if (!(x >= lo && x <= hi)) continue;
        long k = (long)((x - lo) * scale);
        k = clamp(k, (long)0, (long)nbins - 1);
        while (k > 0 && x < edges[k]) k -= 1;
        while (k < (long)nbins - 1 && x >= edges[k + 1]) k += 1;
        if (use_local) atomic_inc(&lhist[k]);
        else atomic_inc(&fhist[k]);
    }
    if (use_local) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint b = lid; b < nbins; b += WG) {
            const uint c = lhist[b];
            if (c) atomic_add(&fhist[b], c);
        }
    }
}
