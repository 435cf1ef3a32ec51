// Back-projection of a stack of ramp-filtered sinograms, SPI slices at once (see
// analysis/fbp.py). The slices of a group share the geometry, so they are the vector:
// one detector position of all SPI slices is one contiguous load, and each pixel's sum
// over the angles is one SPI-wide fused multiply-add per angle.
// Build options: -DSPI=4|8|16 (slices per group), -DPPW=<pixels per work-item along a row>,
// -DINTERLEAVED (out is [groups, size, size, SPI] instead of [slices, size, size]),
// -DPACKED with INTERLEAVED and circle != 0 (out is [groups, inside, SPI]: only the
// pixels inside the circle, row after row; the others are zero by definition).
//
// filt:  [groups, angles, stride, 2 * SPI] floats: for detector sample s (entry s + 1)
//        the SPI values v of the filtered projections, then the SPI slopes (next - v);
//        entry 0's values and entry stride - 1 are zero, so interpolation falls off to zero
//        just outside the detector, and entry stride - 1 serves off-detector positions.
// trig:  (cos, sin) per angle.
// out:   [groups * SPI, size, size]; pixel (i, j) is at x = i - size/2, y = j - size/2 and
//        sees the detector position t = y cos - x sin + centre (scikit-image's iradon).
//        With accumulate != 0 the sums are added to what out holds (streaming use).
// rows:  PACKED only: per row i, (first column inside the circle, index of that pixel
//        among a group's inside pixels); entry size is (0, inside pixels per group).
// Global size (ceil(size / PPW), size, groups).

// Vectors are at most 8 floats wide: PoCL passes a float16 to its builtins (fma, vload16,
// vstore16) through memory without AVX-512, and LLVM warns that it changes the ABI. So
// SPI = 16 is two float8 halves (NV = 2), each with its own accumulator.
#if SPI == 4
typedef float4 vs;
#define NV 1
#define LOAD(k, p) vload4((k), (p))
#define STORE(v, k, p) vstore4((v), (k), (p))
#elif SPI == 8 || SPI == 16
typedef float8 vs;
#define NV (SPI / 8)
#define LOAD(k, p) vload8((k), (p))
#define STORE(v, k, p) vstore8((v), (k), (p))
#else
#error "SPI must be 4, 8 or 16"
#endif

__kernel void backproject_stack(__global const float *filt, __global const float2 *trig,
                                const uint angles, const uint stride, const float centre,
                                const uint size, const int circle, const float scale,
                                const int accumulate, __global float *out,
                                __global const int2 *rows)
{
    const uint j0 = get_global_id(0) * PPW, i = get_global_id(1), g = get_global_id(2);
    if (j0 >= size) return;
    const int r = (int)(size / 2);
    const int xi = (int)i - r;
    const float x = (float)xi;
    const size_t npix = (size_t)size * size;
    const int jn = min((int)PPW, (int)size - (int)j0);
    const int ya = (int)j0 - r;
    const uint row = 2 * SPI;
    const float last = (float)(stride - 1);
    const float c1 = centre + 1.0f;
    __global const float *base = filt + (size_t)g * angles * stride * row;
    vs acc[PPW * NV];
    for (int p = 0; p < PPW * NV; ++p) acc[p] = (vs)(0.0f);
    // the whole run of pixels outside the circle: no angle loop
    const int yb = ya + jn - 1;
    const int ymin = (ya <= 0 && yb >= 0) ? 0 : min(abs(ya), abs(yb));
    const uint loops = (circle && xi * xi + ymin * ymin > r * r) ? 0 : angles;
    for (uint a = 0; a < loops; ++a) {
        const float2 cs = trig[a];
        const float xs = fma(-x, cs.y, c1);
        __global const float *line = base + (size_t)a * stride * row;
        for (int p = 0; p < PPW; ++p) {
            // the same arithmetic per pixel as fbp.cl's, so a slice comes out bit for bit
            // the same whichever kernel and group it went through
            const float t = fma((float)(ya + p), cs.x, xs);
            const bool ok = t >= 0.0f && t < last;
            const int k = ok ? (int)t : (int)stride - 1;
            const float f = ok ? t - (float)k : 0.0f;
            __global const float *w = line + (size_t)k * row;
            #pragma unroll
            for (int h = 0; h < NV; ++h)  // values at vector h, slopes at NV + h
                acc[p * NV + h] += fma((vs)(f), LOAD(NV + h, w), LOAD(h, w));
        }
    }
#if defined(INTERLEAVED) && defined(PACKED)
    // out: [groups, inside, SPI], the pixels of row i from column rows[i].x on at
    // rows[i].y (a running sum of a circle reconstruction: no zeros kept)
    const int2 first = rows[i];
    __global float *o = out + (size_t)g * rows[size].y * SPI;
    for (int p = 0; p < jn; ++p) {
        const int y = ya + p;
        if (xi * xi + y * y > r * r) continue;  // (circle is set: PACKED needs it)
        __global float *at = o + (size_t)(first.y + (int)j0 + p - first.x) * SPI;
        for (int h = 0; h < NV; ++h) {
            const vs value = acc[p * NV + h] * scale;
            STORE(accumulate ? LOAD(h, at) + value : value, h, at);
        }
    }
#elif defined(INTERLEAVED)
    // out: [groups, size, size, SPI], a pixel's SPI slices side by side (streaming sums:
    // each call reads and writes the whole sum, so it is one vector per pixel)
    __global float *o = out + (((size_t)g * size + i) * size + j0) * SPI;
    for (int p = 0; p < jn; ++p) {
        const int y = ya + p;
        const bool outside = circle && xi * xi + y * y > r * r;
        __global float *at = o + (size_t)p * SPI;
        for (int h = 0; h < NV; ++h) {
            const vs value = outside ? (vs)(0.0f) : acc[p * NV + h] * scale;
            STORE(accumulate ? LOAD(h, at) + value : value, h, at);
        }
    }
#else
    __global float *o = out + (size_t)g * SPI * npix + (size_t)i * size + j0;
    for (int p = 0; p < jn; ++p) {
        const int y = ya + p;
        const bool outside = circle && xi * xi + y * y > r * r;
        float vals[SPI];
        for (int h = 0; h < NV; ++h) STORE(acc[p * NV + h] * scale, h, vals);
        for (int s = 0; s < SPI; ++s) {
            const size_t at = (size_t)s * npix + p;
            const float value = outside ? 0.0f : vals[s];
            o[at] = accumulate ? o[at] + value : value;
        }
    }
#endif
}
