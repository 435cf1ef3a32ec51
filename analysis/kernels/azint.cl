/* Azimuthal integration without pixel splitting: per-bin sums of one frame.
 *
 * The host precomputes, once per geometry/mask/range/unit, the bin of every pixel. Per
 * frame only two sums per bin are computed here:
 *   out[b]         = sum of the raw pixel values x in bin b
 *   out[NBINS + b] = sum of (1 - x) over the pixels of bin b with x < 1 (only when
 *                    VARIANCE is 1), so that the Poisson variance sum(max(1, x)) is
 *                    out[b] + out[NBINS + b].
 * Normalisation sums, pixel counts and dark sums do not depend on the frame: the host
 * keeps them.
 *
 * Compile-time parameters (-D):
 *   FRAME_T   pixel type of the frame (ushort, int or float)
 *   ACC_T     accumulator type (double where the device has fp64, else float)
 *   ACC_IS_DOUBLE  1 when ACC_T is double
 *   NBINS     number of output bins
 *   VARIANCE  1 to accumulate the Poisson variance correction, 0 not to
 *
 * Two strategies, chosen by the host:
 *   azint_private + azint_reduce (CPU devices, NBINS small enough for a private array):
 *     each work-item owns a private histogram (plus a "dump" bin NBINS that receives masked
 *     and out-of-range pixels, so the loop has no branch) and streams through one
 *     contiguous slice of the frame, eight pixels per step; no atomics. A second kernel
 *     adds the few partial histograms.
 *   azint_gather (GPUs, or any NBINS): one work-item per bin sums the pixels listed for
 *     that bin in a CSR-style table (pixel indices sorted by bin); no atomics either.
 */

#if ACC_IS_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define CAT(a, b) a##b
#define VEC8(t) CAT(t, 8)

#if VARIANCE
#define ADD(h, v, b, x) { const ACC_T x_ = (ACC_T)(x); h[b] += x_; \
                          if (x_ < (ACC_T)1) v[b] += (ACC_T)1 - x_; }
#else
#define ADD(h, v, b, x) { h[b] += (ACC_T)(x); }
#endif

__kernel void azint_private(__global const FRAME_T *restrict frame,
                            __global const ushort *restrict bins,
                            const uint npix,
                            const uint chunk,
                            __global ACC_T *restrict partial)
{
    const uint part = get_global_id(0);
    ACC_T h[NBINS + 1];
#if VARIANCE
    ACC_T v[NBINS + 1];
#endif
    for (uint b = 0; b <= NBINS; b++) {
        h[b] = (ACC_T)0;
#if VARIANCE
        v[b] = (ACC_T)0;
#endif
    }
    const uint start = part * chunk;   /* chunk is a multiple of 8 */
    const uint stop = min(start + chunk, npix);
    uint i = start;
    for (; i + 8 <= stop; i += 8) {
        const VEC8(FRAME_T) x = vload8(0, frame + i);
        const ushort8 b = vload8(0, bins + i);
        ADD(h, v, b.s0, x.s0); ADD(h, v, b.s1, x.s1);
        ADD(h, v, b.s2, x.s2); ADD(h, v, b.s3, x.s3);
        ADD(h, v, b.s4, x.s4); ADD(h, v, b.s5, x.s5);
        ADD(h, v, b.s6, x.s6); ADD(h, v, b.s7, x.s7);
    }
    for (; i < stop; i++)
        ADD(h, v, bins[i], frame[i]);
    __global ACC_T *o = partial + (size_t)part * 2 * NBINS;
    for (uint b = 0; b < NBINS; b++)
        o[b] = h[b];
#if VARIANCE
    for (uint b = 0; b < NBINS; b++)
        o[NBINS + b] = v[b];
#endif
}

__kernel void azint_reduce(__global const ACC_T *restrict partial,
                           const uint nparts,
                           __global ACC_T *restrict out)
{
    const uint b = get_global_id(0);
    if (b >= (1 + VARIANCE) * NBINS)
        return;
    ACC_T s = (ACC_T)0;
    for (uint p = 0; p < nparts; p++)
        s += partial[(size_t)p * 2 * NBINS + b];
    out[b] = s;
}

__kernel void azint_gather(__global const FRAME_T *restrict frame,
                           __global const uint *restrict indptr,
                           __global const uint *restrict indices,
                           __global ACC_T *restrict out)
{
    const uint b = get_global_id(0);
    if (b >= NBINS)
        return;
    ACC_T s = (ACC_T)0;
    ACC_T v = (ACC_T)0;
    const uint stop = indptr[b + 1];
    for (uint j = indptr[b]; j < stop; j++) {
        const ACC_T x = (ACC_T)frame[indices[j]];
        s += x;
#if VARIANCE
        v += fmax((ACC_T)1, x) - x;
#endif
    }
    out[b] = s;
    out[NBINS + b] = v;
}
