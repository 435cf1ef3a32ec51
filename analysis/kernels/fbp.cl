// Back-projection of ramp-filtered parallel-beam sinograms (see analysis/fbp.py).
// Build options: -DSPI=<slices per work-item> (they share the geometry), -DVW=8|16
// (pixels per work-item along a row, computed as OpenCL vectors of 8: PoCL does not
// vectorise across work-items around the angle loop, so the kernel does it itself).
//
// filt:  [slices (a multiple of SPI), angles, stride] of (v, next - v) pairs of the
//        filtered projection p, where p[s + 1] is detector sample s, p[0] = 0 and
//        p[stride - 1] = p[stride] = 0: interpolation falls off to zero just outside the
//        detector, and entry stride - 1 is all zero (used for positions off the detector).
// trig:  (cos, sin) per angle.
// out:   [slices, size, size]; pixel (i, j) is at x = i - size/2, y = j - size/2 and sees
//        the detector position t = y cos - x sin + centre (scikit-image's iradon).
// Global size (ceil(size / VW) rounded up to the local size, size, slices / SPI).

// Vectors are 8 floats wide: PoCL passes a float16 to its builtins (fma, convert, vstore)
// through memory without AVX-512, and LLVM warns that it changes the ABI. So VW = 16 is
// NH = 2 halves of 8 pixels, each with its own accumulators.
#if VW != 8 && VW != 16
#error "VW must be 8 or 16"
#endif
#define NH (VW / 8)
#define G1(n) v0.s##n = row[k.s##n].x; dv.s##n = row[k.s##n].y;
#define GATHER G1(0) G1(1) G1(2) G1(3) G1(4) G1(5) G1(6) G1(7)
#define IOTA ((float8)(0, 1, 2, 3, 4, 5, 6, 7))

__kernel void backproject(__global const float2 *filt, __global const float2 *trig,
                          const uint angles, const uint stride, const float centre,
                          const uint size, const int circle, const float scale,
                          __global float *out)
{
    const uint j0 = get_global_id(0) * VW, i = get_global_id(1), g = get_global_id(2);
    if (j0 >= size) return;
    const int r = (int)(size / 2);
    const int xi = (int)i - r;
    const float x = (float)xi;
    const size_t npix = (size_t)size * size;
    const int jn = min((int)VW, (int)size - (int)j0);
    const int ya = (int)j0 - r, yb = ya + jn - 1;
    // the whole run of pixels outside the circle: no angle loop
    const int ymin = (ya <= 0 && yb >= 0) ? 0 : min(abs(ya), abs(yb));
    const bool skip = circle && xi * xi + ymin * ymin > r * r;
    float8 acc[SPI * NH];
    for (int s = 0; s < SPI * NH; ++s) acc[s] = (float8)(0.0f);
    if (!skip) {
        const float last = (float)(stride - 1);
        const size_t slice_stride = (size_t)angles * stride;
        const float c1 = centre + 1.0f;
        __global const float2 *base = filt + (size_t)g * SPI * slice_stride;
        for (uint a = 0; a < angles; ++a) {
            const float2 cs = trig[a];
            const float xs = fma(-x, cs.y, c1);
            #pragma unroll
            for (int h = 0; h < NH; ++h) {
                const float8 y = (float8)((float)(ya + 8 * h)) + IOTA;
                const float8 t = fma(y, (float8)(cs.x), (float8)(xs));
                const int8 ok = (t >= (float8)(0.0f)) & (t < (float8)(last));
                const int8 k = select((int8)((int)stride - 1), convert_int8(t), ok);
                const float8 f = select((float8)(0.0f), t - convert_float8(k), ok);
                for (int s = 0; s < SPI; ++s) {
                    __global const float2 *row = base + s * slice_stride + (size_t)a * stride;
                    float8 v0, dv;
                    GATHER
                    acc[s * NH + h] += fma(f, dv, v0);
                }
            }
        }
    }
    __global float *o = out + (size_t)g * SPI * npix + (size_t)i * size + j0;
    for (int s = 0; s < SPI; ++s) {
        float run[VW];
        for (int h = 0; h < NH; ++h) vstore8(acc[s * NH + h] * scale, h, run);
        for (int jj = 0; jj < jn; ++jj) {
            const int y = ya + jj;
            const bool outside = circle && xi * xi + y * y > r * r;
            o[s * npix + jj] = outside ? 0.0f : run[jj];
        }
    }
}
