/* Azimuthal integration: per-bin sums of a stack of frames through a precomputed sparse
 * matrix (rows = bins, coefficient c of each pixel in each bin).
 *
 * Everything that does not depend on the frame (sum of c*norm, of (c*norm)^2, of c, of
 * c*dark per bin) is kept by the host. Per frame the kernels sum the frame: S = sum c*x and,
 * for Poisson errors, V = sum c^2 * max(1, x). A pixel whose value is not finite or is the
 * dummy value does not count in this frame: the private-histogram kernels list it (the host
 * takes its share out of the static sums), the CSR kernels add its share to "bad" sums.
 * Frames are read in their own type and converted here, on the device.
 *
 * Compile-time parameters (-D):
 *   FRAME_T        pixel type (uchar, char, ushort, short, uint, int, ulong, long, float,
 *                  double)
 *   ACC_T          accumulator type (double where the device has fp64, else float)
 *   ACC_IS_DOUBLE  1 when ACC_T is double (enables fp64)
 *   NBINS          number of output bins (at most PRIVATE_MAX for the private kernels)
 *   VARIANCE       1 to accumulate the Poisson variance, 0 not to
 *   CHECK_FINITE   1 for float frames: non-finite values do not count
 *   CHECK_DUMMY    1 when a dummy value is set; DUMMY_EXACT 1 when its tolerance is 0;
 *                  DUMMY_RANGE 1 for integer frames, whose values DUMMY_LO..DUMMY_HI are
 *                  the dummy value (as the float32 compare of the others finds it)
 *   WIDE           1 for 8-byte pixel types (read one by one)
 *   MASK_T         the signed integer type of FRAME_T's size (char, short, int, long)
 *   NSUMS          1, 2 or 4 private histograms the pixels alternate over (hist_private)
 *   PACK_OK        1 when the frames are unsigned 8- or 16-bit and a slice has fewer than
 *                  2^24 pixels: hist_private then sums in packed integers (below)
 *   WIDTH          coefficients stored per pixel (split_private)
 *
 * Kernels:
 *   hist_private   no splitting, CPU devices: each work-item streams through a slice of a
 *                  frame into a private histogram (plus a dump bin NBINS), no atomics;
 *                  gid(0) = slice, gid(1) = frame; the host adds the slices' partial
 *                  histograms. Poisson: out[NBINS+b] = sum of (1 - x) over pixels with
 *                  x < 1, so sum max(1, x) = S + that. The pixel loop has no branch (a
 *                  branch per 8 pixels costs as much as the histogram): pixels that do not
 *                  count add 0 (listed after, when the slice holds any), and the
 *                  variance of pixels below 1 is a second (branch-free) pass, when the
 *                  slice holds any. Packed (PACK_OK, nothing checked per pixel): one
 *                  pass adding x + (x == 0) * 2^40 per pixel into 64-bit integers, the
 *                  bin's sum in the low 40 bits and its zero pixels (Poisson: sum of
 *                  1 - x over x < 1) above, both exact (a slice sums < 2^24 * 2^16).
 *   split_private  the same with pixel splitting: each pixel carries its first bin and
 *                  WIDTH coefficients (zeros where it spreads over fewer bins), the
 *                  coefficients of pixels that spread wider come in a short list after;
 *                  out[NBINS+b] = V Also branch-free, 8 pixels a step over 4
 *                  histograms; pixels that do not count add 0 (and are listed after).
 *   csr_sums       one work-item per bin and frame over the bin's CSR row: S, V, and the
 *                  bad pixels' sum c, c*norm, (c*norm)^2, c*dark.
 *   csr_azimuthal  the "azimuthal" error model: pyFAI's running weighted variance over the
 *                  row in CSR order, with every sum (S, V, norm, norm^2, count).
 */

#if ACC_IS_DOUBLE
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#ifndef WIDTH
#define WIDTH 1
#endif
/* pixels per block of the private kernels' loops (a multiple of 8) */
#define BLOCK 1024

#define CAT(a, b) a##b
#define VEC8(t) CAT(t, 8)
#define XCAT(a, b) CAT(a, b)
#define CONVERT8(t) XCAT(convert_, VEC8(t))
#define VEC4(t) CAT(t, 4)
#define CONVERT4(t) XCAT(convert_, VEC4(t))

/* Whether a pixel value (converted to float, as pyFAI compares) does not count: not
   finite, or the dummy value. BAD(x) for one value — 0 when nothing is checked, so that
   the test and what depends on it compile away — and BAD8(x) for 8 at once (lanes -1). */
#if CHECK_FINITE
#define NOT_FINITE(xf) (!isfinite(xf))
#else
#define NOT_FINITE(xf) 0
#endif
#if CHECK_DUMMY && DUMMY_EXACT
#define IS_DUMMY(xf, T) ((xf) == (T)(dummy))
#elif CHECK_DUMMY
#define IS_DUMMY(xf, T) (fabs((xf) - (T)(dummy)) <= (T)(delta))
#else
#define IS_DUMMY(xf, T) 0
#endif
#if DUMMY_RANGE  /* integer frames: the values that are the dummy, found by the host */
#define BAD(x) ((x) >= DUMMY_LO && (x) <= DUMMY_HI)
#define BAD8(x) convert_int8(((x) >= (VEC8(FRAME_T))DUMMY_LO) & \
                             ((x) <= (VEC8(FRAME_T))DUMMY_HI))
#else
#define BAD(x) (NOT_FINITE((float)(x)) | IS_DUMMY((float)(x), float))
#define BAD8(x) (NOT_FINITE(convert_float8(x)) | IS_DUMMY(convert_float8(x), float8))
#endif

/* 8 pixels at once, without a branch (a branch per 8 pixels costs as much as the
   histogram): the values that do not count become 0, and `seen` notes those of real bins
   (their bins b), for a listing pass after the loop */
#if CHECK_FINITE || CHECK_DUMMY
#define SCREEN8(x, b, seen) { const int8 bad_ = BAD8(x); \
    x = select(x, (VEC8(FRAME_T))0, CONVERT8(MASK_T)(bad_)); \
    seen |= convert_short8(bad_) & ((b) != (ushort8)NBINS); }
#else
#define SCREEN8(x, b, seen)
#endif

#if VARIANCE
#define ADD(h, v, b, x) { const ACC_T x_ = (ACC_T)(x); h[b] += x_; \
                          if (x_ < (ACC_T)1) v[b] += (ACC_T)1 - x_; }
#else
#define ADD(h, v, b, x) { h[b] += (ACC_T)(x); }
#endif
#define SUM(h, b, x) { h[b] += (ACC_T)(x); }
/* max(1, x) of one finite value without a branch: PoCL's scalar fmax and max branch,
   which low counts mispredict (CSR sums 3-4x slower); exact for integer values, within
   an ulp otherwise */
#define MAX1(x) ((ACC_T)0.5 * ((ACC_T)1 + (x) + fabs((x) - (ACC_T)1)))

/* a pixel that does not count, listed for the host (which counts them all) */
#define LIST_BAD(i) { if (nbad < cap) bad_idx[bad_base + nbad] = (i); nbad++; }

/* a pixel of a real bin that does not count: listed, and sent to the dump bin */
#define SCREEN(b, x, i) if ((b) != NBINS && BAD(x)) { LIST_BAD(i) (b) = NBINS; }

/* the ids of a private-histogram work-item: slice `part` of frame `f`, its output slot */
#define PRIVATE_SETUP \
    const uint part = get_global_id(0); \
    const uint nparts = get_global_size(0); \
    const uint f = get_global_id(1); \
    __global const FRAME_T *frame = frames + (size_t)f * npix; \
    const size_t slot = (size_t)f * nparts + part; \
    const size_t bad_base = slot * cap; \
    uint nbad = 0;

/* the number of bad pixels a work-item saw, after every slot's histograms (so that one
   read brings the sums and the counts back) */
#define STORE_BAD_COUNT \
    partial[(size_t)get_global_size(0) * get_global_size(1) * 2 * NBINS + slot] = (ACC_T)nbad;

/* a work-item's sums (h) and variance sums (v, or none) into its output slot */
inline void store_partial(__global ACC_T *o, const ACC_T *h, const ACC_T *v)
{
    for (uint b = 0; b < NBINS; b++)
        o[b] = h[b];
    for (uint b = 0; b < NBINS; b++)
        o[NBINS + b] = v ? v[b] : (ACC_T)0;
}


/* the private-histogram kernels: only for PRIVATE_MAX bins or fewer (a private array
   per work-item; their bin indices are ushort) */
#if NBINS <= PRIVATE_MAX

#if PACK_OK && !CHECK_FINITE && !CHECK_DUMMY
#define PACKED 1
#define ZERO_SHIFT 40
#define LOW_BITS ((1UL << ZERO_SHIFT) - 1UL)
/* a pixel's packed term: its value, plus 2^40 when it is 0 (Poisson only) */
#if VARIANCE
#define PACK8(x) (convert_ulong8(x) + (convert_ulong8( \
    (x == (VEC8(FRAME_T))0) & (VEC8(MASK_T))1) << (ulong8)ZERO_SHIFT))
#define PACK1(x) ((ulong)(x) + ((ulong)((x) == 0) << ZERO_SHIFT))
#else
#define PACK8(x) convert_ulong8(x)
#define PACK1(x) ((ulong)(x))
#endif
/* hist_private's one pass over pixels start..stop of a frame of unsigned 8/16-bit values
   (see the header): 8 pixels a step over NSUMS packed histograms, then the slice's sums
   and zero counts into its output slot o */
inline void hist_packed(__global const FRAME_T *restrict frame,
                        __global const ushort *restrict bins, const uint start,
                        const uint stop, __global ACC_T *o)
{
    ulong h[NBINS + 1];
#if NSUMS >= 2
    ulong h2[NBINS + 1];
#else
#define h2 h
#endif
#if NSUMS == 4
    ulong h3[NBINS + 1], h4[NBINS + 1];
#else
#define h3 h
#define h4 h2
#endif
    for (uint b = 0; b <= NBINS; b++) {
        h[b] = 0UL;
#if NSUMS >= 2
        h2[b] = 0UL;
#endif
#if NSUMS == 4
        h3[b] = 0UL;
        h4[b] = 0UL;
#endif
    }
    const uint vstop = start + (stop - start) / 8 * 8;
    uint i = start;
    for (; i < vstop; i += 8) {
        const ulong8 w = PACK8(vload8(0, frame + i));
        const ushort8 b = vload8(0, bins + i);
        h[b.s0] += w.s0; h2[b.s1] += w.s1; h3[b.s2] += w.s2; h4[b.s3] += w.s3;
        h[b.s4] += w.s4; h2[b.s5] += w.s5; h3[b.s6] += w.s6; h4[b.s7] += w.s7;
    }
    for (; i < stop; i++)
        h[bins[i]] += PACK1(frame[i]);
    for (uint b = 0; b < NBINS; b++) {
        ulong t = h[b];
#if NSUMS >= 2
        t += h2[b];
#endif
#if NSUMS == 4
        t += h3[b] + h4[b];
#endif
        o[b] = (ACC_T)(t & LOW_BITS);
        o[NBINS + b] = (ACC_T)(t >> ZERO_SHIFT);  /* 0 without VARIANCE */
    }
}
#undef h2
#undef h3
#undef h4
#else
#define PACKED 0
#endif

__kernel void hist_private(__global const FRAME_T *restrict frames,
                           __global const ushort *restrict bins,
                           const uint npix,
                           const uint chunk,
                           __global ACC_T *restrict partial,
                           __global uint *restrict bad_idx,
                           const uint cap,
                           const float dummy,
                           const float delta)
{
    PRIVATE_SETUP
#if PACKED
    hist_packed(frame, bins, part * chunk, min(part * chunk + chunk, npix),
                partial + slot * 2 * NBINS);
#else
    /* neighbouring pixels often share a bin: spreading them over NSUMS histograms keeps
       their additions independent (none waits on the store before it) */
    ACC_T h[NBINS + 1];
#if NSUMS >= 2
    ACC_T h2[NBINS + 1];
#else
#define h2 h
#endif
#if NSUMS == 4
    ACC_T h3[NBINS + 1], h4[NBINS + 1];
#else
#define h3 h
#define h4 h2
#endif
#if VARIANCE
    ACC_T v[NBINS + 1];
#endif
    for (uint b = 0; b <= NBINS; b++) {
        h[b] = (ACC_T)0;
#if NSUMS >= 2
        h2[b] = (ACC_T)0;
#endif
#if NSUMS == 4
        h3[b] = (ACC_T)0;
        h4[b] = (ACC_T)0;
#endif
#if VARIANCE
        v[b] = (ACC_T)0;
#endif
    }
    const uint start = part * chunk;   /* chunk is a multiple of 8 */
    const uint stop = min(start + chunk, npix);
    uint i = start;
#if !WIDE  /* (8-byte types: no 8-wide vector loads, which change the ABI without AVX-512) */
    /* Blocks of BLOCK pixels, 8 at a time without a branch (one per 8 pixels costs as much
       as the histogram): a pixel of a real bin that does not count adds 0, and the block
       notes that it saw one; so it does of a pixel below 1, whose Poisson variance (1, not
       x) is added after. The second passes, rare, go over the noted blocks only. */
    const uint vstop = start + (stop - start) / 8 * 8;
    for (uint first = start; first < vstop; first += BLOCK) {
        const uint last = min(first + BLOCK, vstop);
        short8 seen_bad = (short8)0;  /* stays 0 when nothing is checked */
        short8 seen_low = (short8)0;  /* (Poisson only) */
        for (i = first; i < last; i += 8) {
            VEC8(FRAME_T) x = vload8(0, frame + i);
            const ushort8 b = vload8(0, bins + i);
#if VARIANCE
            seen_low |= convert_short8(x < (VEC8(FRAME_T))1) & (b != (ushort8)NBINS);
#endif
            SCREEN8(x, b, seen_bad)
            SUM(h, b.s0, x.s0) SUM(h2, b.s1, x.s1) SUM(h3, b.s2, x.s2) SUM(h4, b.s3, x.s3)
            SUM(h, b.s4, x.s4) SUM(h2, b.s5, x.s5) SUM(h3, b.s6, x.s6) SUM(h4, b.s7, x.s7)
        }
        if (any(seen_bad))  /* list them */
            for (uint j = first; j < last; j++)
                if (bins[j] != NBINS && BAD(frame[j]))
                    LIST_BAD(j)
#if VARIANCE
        if (any(seen_low))  /* 1 - x of the pixels below 1 (those that do not count as 1:
                               they add 0) */
            for (uint j = first; j < last; j += 8) {
                VEC8(FRAME_T) x = vload8(0, frame + j);
                const ushort8 b = vload8(0, bins + j);
#if CHECK_FINITE || CHECK_DUMMY
                x = select(x, (VEC8(FRAME_T))1, CONVERT8(MASK_T)(BAD8(x)));
#endif
                /* max(0, 1 - x) as vectors: a scalar max became a branch, which low
                   counts (half the pixels below 1) mispredicted */
                const VEC4(ACC_T) u0 = fmax((VEC4(ACC_T))0,
                                            (VEC4(ACC_T))1 - CONVERT4(ACC_T)(x.lo));
                const VEC4(ACC_T) u1 = fmax((VEC4(ACC_T))0,
                                            (VEC4(ACC_T))1 - CONVERT4(ACC_T)(x.hi));
                v[b.s0] += u0.s0; v[b.s1] += u0.s1; v[b.s2] += u0.s2; v[b.s3] += u0.s3;
                v[b.s4] += u1.s0; v[b.s5] += u1.s1; v[b.s6] += u1.s2; v[b.s7] += u1.s3;
            }
#endif
    }
    i = vstop;
#endif
    for (; i < stop; i++) {
        ushort b = bins[i];
        const FRAME_T x = frame[i];
        SCREEN(b, x, i)
        ADD(h, v, b, x);
    }
    for (uint b = 0; b < NBINS; b++) {
#if NSUMS >= 2
        h[b] += h2[b];
#endif
#if NSUMS == 4
        h[b] += h3[b] + h4[b];
#endif
    }
#if VARIANCE
    store_partial(partial + slot * 2 * NBINS, h, v);
#else
    store_partial(partial + slot * 2 * NBINS, h, 0);
#endif
#endif  /* PACKED */
    STORE_BAD_COUNT
}
#undef h2
#undef h3
#undef h4

/* one pixel of split_private: its WIDTH coefficients into bins first..first+WIDTH-1, its
   value x and (Poisson) variance var = max(1, x) */
#if VARIANCE
#define SPREAD(h, v, first, w, x, var) { \
    for (uint k = 0; k < WIDTH; k++) { const ACC_T c_ = (ACC_T)(w)[k]; \
        (h)[(first) + k] += c_ * (x); (v)[(first) + k] += c_ * c_ * (var); } }
#else
#define SPREAD(h, v, first, w, x, var) { \
    for (uint k = 0; k < WIDTH; k++) (h)[(first) + k] += (ACC_T)(w)[k] * (x); }
#endif

__kernel void split_private(__global const FRAME_T *restrict frames,
                            __global const ushort *restrict firsts,
                            __global const float *restrict weights,
                            __global const uint *restrict over_pix,
                            __global const ushort *restrict over_bin,
                            __global const float *restrict over_coef,
                            __global const uint *restrict over_start,
                            const uint npix,
                            const uint chunk,
                            __global ACC_T *restrict partial,
                            __global uint *restrict bad_idx,
                            const uint cap,
                            const float dummy,
                            const float delta)
{
    PRIVATE_SETUP
    /* WIDTH extra bins: pixels in no bin point at NBINS with zero weights. Neighbouring
       pixels share bins: spread over 4 histograms (and variance sums), their additions do
       not wait on each other (with 2, the kernel runs at half the speed) */
    ACC_T h[NBINS + WIDTH], h2[NBINS + WIDTH], h3[NBINS + WIDTH], h4[NBINS + WIDTH];
#if VARIANCE
    ACC_T v[NBINS + WIDTH], v2[NBINS + WIDTH], v3[NBINS + WIDTH], v4[NBINS + WIDTH];
#endif
    for (uint b = 0; b < NBINS + WIDTH; b++) {
        h[b] = h2[b] = h3[b] = h4[b] = (ACC_T)0;
#if VARIANCE
        v[b] = v2[b] = v3[b] = v4[b] = (ACC_T)0;
#endif
    }
    const uint start = part * chunk;   /* chunk is a multiple of 8 */
    const uint stop = min(start + chunk, npix);
    uint i = start;
#if !WIDE
    const uint vstop = start + (stop - start) / 8 * 8;
    for (uint first = start; first < vstop; first += BLOCK) {  /* as in hist_private */
        const uint last = min(first + BLOCK, vstop);
        short8 seen = (short8)0;
        for (i = first; i < last; i += 8) {
            const ushort8 f = vload8(0, firsts + i);
            VEC8(FRAME_T) xr = vload8(0, frame + i);
            SCREEN8(xr, f, seen)
            /* values and variances as vectors: a scalar max(1, x) became a branch, which
               low counts mispredicted */
            const VEC4(ACC_T) x0 = CONVERT4(ACC_T)(xr.lo), x1 = CONVERT4(ACC_T)(xr.hi);
            const VEC4(ACC_T) r0 = fmax((VEC4(ACC_T))1, x0), r1 = fmax((VEC4(ACC_T))1, x1);
            __global const float *w = weights + (size_t)i * WIDTH;
            SPREAD(h, v, f.s0, w, x0.s0, r0.s0)
            SPREAD(h2, v2, f.s1, w + WIDTH, x0.s1, r0.s1)
            SPREAD(h3, v3, f.s2, w + 2 * WIDTH, x0.s2, r0.s2)
            SPREAD(h4, v4, f.s3, w + 3 * WIDTH, x0.s3, r0.s3)
            SPREAD(h, v, f.s4, w + 4 * WIDTH, x1.s0, r1.s0)
            SPREAD(h2, v2, f.s5, w + 5 * WIDTH, x1.s1, r1.s1)
            SPREAD(h3, v3, f.s6, w + 6 * WIDTH, x1.s2, r1.s2)
            SPREAD(h4, v4, f.s7, w + 7 * WIDTH, x1.s3, r1.s3)
        }
        if (any(seen))  /* list them (and take back the c² · max(1, 0) they added) */
            for (uint j = first; j < last; j++)
                if (firsts[j] != NBINS && BAD(frame[j])) {
                    LIST_BAD(j)
#if VARIANCE
                    for (uint k = 0; k < WIDTH; k++) {
                        const ACC_T c = (ACC_T)weights[(size_t)j * WIDTH + k];
                        v[firsts[j] + k] -= c * c;
                    }
#endif
                }
    }
    i = vstop;
#endif
    for (; i < stop; i++) {  /* the last pixels (every pixel of 8-byte types) */
        const ushort first = firsts[i];
        const FRAME_T xr = frame[i];
        if (first != NBINS && BAD(xr)) {
            LIST_BAD(i)
            continue;
        }
        const ACC_T x = (ACC_T)xr;
        SPREAD(h, v, first, weights + (size_t)i * WIDTH, x, MAX1(x))
    }
    /* the coefficients beyond WIDTH of the few pixels that spread wider */
    for (uint j = over_start[part]; j < over_start[part + 1]; j++) {
        const FRAME_T xr = frame[over_pix[j]];
        if (BAD(xr))
            continue;
        const ACC_T x = (ACC_T)xr, c = (ACC_T)over_coef[j];
        h[over_bin[j]] += c * x;
#if VARIANCE
        v[over_bin[j]] += c * c * MAX1(x);
#endif
    }
    for (uint b = 0; b < NBINS; b++) {
        h[b] += h2[b] + h3[b] + h4[b];
#if VARIANCE
        v[b] += v2[b] + v3[b] + v4[b];
#endif
    }
#if VARIANCE
    store_partial(partial + slot * 2 * NBINS, h, v);
#else
    store_partial(partial + slot * 2 * NBINS, h, 0);
#endif
    STORE_BAD_COUNT
}

#endif  /* NBINS <= PRIVATE_MAX */

__kernel void csr_sums(__global const FRAME_T *restrict frames,
                       __global const uint *restrict indptr,
                       __global const uint *restrict indices,
                       __global const float *restrict coefs,
                       __global const float *restrict norm,
                       __global const float *restrict dark,
                       const uint npix,
                       const uint has_dark,
                       __global ACC_T *restrict out,
                       const float dummy,
                       const float delta)
{
    const uint b = get_global_id(0);
    const uint f = get_global_id(1);
    if (b >= NBINS)
        return;
    __global const FRAME_T *frame = frames + (size_t)f * npix;
    ACC_T s = (ACC_T)0, v = (ACC_T)0;
    ACC_T bc = (ACC_T)0, bn = (ACC_T)0, bn2 = (ACC_T)0, bd = (ACC_T)0;
    const uint stop = indptr[b + 1];
    for (uint j = indptr[b]; j < stop; j++) {
        const uint idx = indices[j];
        const ACC_T c = (ACC_T)coefs[j];
        const FRAME_T xr = frame[idx];
        if (BAD(xr)) {
            const ACC_T w = c * (ACC_T)norm[idx];
            bc += c;
            bn += w;
            bn2 += w * w;
            if (has_dark)
                bd += c * (ACC_T)dark[idx];
            continue;
        }
        const ACC_T x = (ACC_T)xr;
        s += c * x;
#if VARIANCE
        v += c * c * MAX1(x);
#endif
    }
    __global ACC_T *o = out + (size_t)f * 6 * NBINS;
    o[b] = s;
    o[NBINS + b] = v;
    o[2 * NBINS + b] = bc;
    o[3 * NBINS + b] = bn;
    o[4 * NBINS + b] = bn2;
    o[5 * NBINS + b] = bd;
}

__kernel void csr_azimuthal(__global const FRAME_T *restrict frames,
                            __global const uint *restrict indptr,
                            __global const uint *restrict indices,
                            __global const float *restrict coefs,
                            __global const float *restrict norm,
                            __global const float *restrict dark,
                            const uint npix,
                            const uint has_dark,
                            __global ACC_T *restrict out,
                            const float dummy,
                            const float delta)
{
    const uint b = get_global_id(0);
    const uint f = get_global_id(1);
    if (b >= NBINS)
        return;
    __global const FRAME_T *frame = frames + (size_t)f * npix;
    ACC_T s = (ACC_T)0, vv = (ACC_T)0, wn = (ACC_T)0, wn2 = (ACC_T)0, cnt = (ACC_T)0;
    const uint stop = indptr[b + 1];
    for (uint j = indptr[b]; j < stop; j++) {
        const ACC_T c = (ACC_T)coefs[j];
        if (c == (ACC_T)0)
            continue;
        const uint idx = indices[j];
        const FRAME_T xr = frame[idx];
        if (BAD(xr))
            continue;
        const ACC_T n = (ACC_T)norm[idx];
        const ACC_T sig = (ACC_T)xr - (has_dark ? (ACC_T)dark[idx] : (ACC_T)0);
        const ACC_T w = c * n;
        cnt += c;
        if (wn2 <= (ACC_T)0) {
            s = c * sig;
            wn = w;
            wn2 = w * w;
        } else {
            const ACC_T before = wn;
            wn += w;
            wn2 += w * w;
            const ACC_T x = sig / n;
            const ACC_T d1 = s / before - x;
            s += c * sig;
            const ACC_T d2 = s / wn - x;
            vv += w * w * d1 * d2;
        }
    }
    __global ACC_T *o = out + (size_t)f * 6 * NBINS;
    o[b] = s;
    o[NBINS + b] = vv;
    o[2 * NBINS + b] = wn;
    o[3 * NBINS + b] = wn2;
    o[4 * NBINS + b] = cnt;
    o[5 * NBINS + b] = (ACC_T)0;
}
