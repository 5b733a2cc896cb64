/* DiTAC's LUT kernels for the CPU, float32. Linear: GELU(x) + E(x), E interpolated from a table;
 * nearest (the released code's scheme): below.
 *
 * Built by actlab.kernels.native with the system's C compiler at first use (-O3, -march=native,
 * -mtune=generic, -fno-math-errno, -fno-trapping-math: the last lets the compiler evaluate both
 * sides of a select, which vectorises the loops), and called through ctypes. The math is that of
 * actlab.activations.ditac._linear_reference, the truth these kernels are tested against:
 *
 *   s = clamp((x - a)·(size - 1)/(b - a) + 1, 0, size)  (NaN -> 0), k = floor(s), w = s - k
 *   y = x·Φ(x) + values[k] + w·steps[k]
 *   dy/dx = Φ(x) + x·φ(x) + steps[k]·(size - 1)/(b - a)  (the last term only where s is not clamped)
 *   d/dvalues[k] += g, d/dsteps[k] += g·w
 *
 * The inputs arrive in the canonical "rows" shape (outer, channels, inner), contiguous, as runs of
 * ``inner`` elements: run r belongs to channel r mod channels, which reads its tables at
 * channel·stride ("shared" is one channel). A call covers runs [first, first + runs), so that
 * threads can split the work. Table gradients are summed in double precision into the caller's
 * (per-thread) tables. Arguments: the per-element arrays (x, then grad, then the output), the
 * tables, the table sums, the run layout, then the constants.
 */
#include <stdint.h>
#include <string.h>

/* e^x for x <= 0, to float32 precision; 0 below -87 (where the float32 result is at most 1.7e-38).
 * Cody-Waite reduction x = n·ln2 + r, |r| <= ln2/2, and a degree-6 polynomial for e^r. */
static inline float exp_nonpositive(float x) {
    float xc = x < -87.0f ? -87.0f : x;
    float n = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693145751953125f - n * 1.428606765330187045e-06f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x < -87.0f ? 0.0f : p * two_n;
}

/* erf(z), and e^{-z²} in *gaussian: Abramowitz-Stegun 7.1.26 (absolute error < 1.5e-7, the formula
 * of ATen's vectorised float32 erf) for |z| >= 0.25, where its one exponential is e^{-z²} itself;
 * the Taylor series below, where A-S loses relative precision (actlab._math.erf_and_gaussian). */
static inline float erf_and_gaussian(float z, float *gaussian) {
    float a = z < 0.0f ? -z : z;
    float e = exp_nonpositive(-z * z);
    *gaussian = e;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float far = 1.0f - t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f)))) * e;
    far = z < 0.0f ? -far : far;
    float z2 = z * z;
    float near = z * (1.1283791670955126f + z2 * (-0.3761263890318375f + z2 * (0.11283791670955126f + z2 * (-0.02686617064513125f + z2 * 0.005223977625442187f))));
    return a < 0.25f ? near : far;
}

#define SQRT1_2 0.70710678118654752f
#define INV_SQRT_2PI 0.3989422804014327f

void ditac_linear_forward(const float *restrict x, float *restrict out, const float *restrict values,
                          const float *restrict steps, int64_t first, int64_t runs, int64_t channels, int64_t inner,
                          int64_t stride, float scale, float shift, float top) {
    for (int64_t r = first; r < first + runs; r++) {
        const int64_t c = r % channels;
        const float *restrict vc = values + c * stride;
        const float *restrict sc = steps + c * stride;
        const float *restrict xb = x + r * inner;
        float *restrict ob = out + r * inner;
#pragma GCC ivdep
        for (int64_t i = 0; i < inner; i++) {
            float xi = xb[i];
            float s = xi * scale + shift;
            s = s > 0.0f ? s : 0.0f; /* NaN fails the test and lands on 0 */
            s = s < top ? s : top;
            int32_t k = (int32_t)s;
            float w = s - (float)k;
            float gaussian;
            float cdf = 0.5f + 0.5f * erf_and_gaussian(xi * SQRT1_2, &gaussian);
            ob[i] = xi * cdf + vc[k] + w * sc[k];
        }
    }
}

/* Elements per block of the backward pass: the segment indices and weighted gradients of a block
 * wait on the stack (in L1) for the scalar scatter-add, so the arithmetic loop stays vectorised. */
#define BLOCK 1024

void ditac_linear_backward(const float *restrict x, const float *restrict grad, float *restrict grad_x,
                           const float *restrict steps, double *restrict grad_values, double *restrict grad_steps,
                           int64_t first, int64_t runs, int64_t channels, int64_t inner, int64_t stride,
                           float scale, float shift, float top, int32_t need_table) {
    int32_t index[BLOCK];
    float weighted[BLOCK];
    for (int64_t r = first; r < first + runs; r++) {
        const int64_t c = r % channels;
        const float *restrict sc = steps + c * stride;
        double *restrict gv = grad_values + c * stride;
        double *restrict gs = grad_steps + c * stride;
        const int64_t base = r * inner;
        for (int64_t start = 0; start < inner; start += BLOCK) {
            int64_t m = inner - start < BLOCK ? inner - start : BLOCK;
            const float *restrict xb = x + base + start;
            const float *restrict gb = grad + base + start;
            float *restrict gxb = grad_x + base + start;
#pragma GCC ivdep
            for (int64_t i = 0; i < m; i++) {
                float xi = xb[i], gi = gb[i];
                float s0 = xi * scale + shift;
                float s = s0 > 0.0f ? s0 : 0.0f;
                s = s < top ? s : top;
                int32_t k = (int32_t)s;
                float gaussian;
                float cdf = 0.5f + 0.5f * erf_and_gaussian(xi * SQRT1_2, &gaussian);
                /* unconditional load and a bitwise & (no short circuit): no branch in the loop */
                float inside = ((s0 > 0.0f) & (s0 < top)) ? scale : 0.0f;
                gxb[i] = gi * (cdf + xi * (INV_SQRT_2PI * gaussian) + inside * sc[k]);
                index[i] = k;
                weighted[i] = gi * (s - (float)k);
            }
            if (need_table) {
                for (int64_t i = 0; i < m; i++) {
                    gv[index[i]] += (double)gb[i];
                    gs[index[i]] += (double)weighted[i];
                }
            }
        }
    }
}

/* The nearest-grid LUT of the released code (actlab.activations.ditac._nearest_reference, with Φ
 * from erf as in the compiled path): r = clamp((x - a)·(size - 1)/(b - a), 0, size - 1) rounded
 * half to even, x̃ = a + (b - a)·(r/(size - 1) + D[r]) on [a, b] and x elsewhere, y = x̃·Φ(x);
 * backward straight-through: dx̃/dx = T'(u_r) = slope[r] on [a, b] (1 elsewhere), and
 * d/dD[r] += g·Φ(x)·(b - a) on [a, b]. Here ``top`` is size - 1 and the tables are not padded. */
static inline int32_t nearest_point(float xi, float scale, float shift, float top, float *r) {
    float s = xi * scale + shift;
    s = s > 0.0f ? s : 0.0f;
    s = s < top ? s : top;
    *r = __builtin_rintf(s); /* the current rounding mode: to nearest, ties to even (torch.round) */
    return (int32_t)*r;
}

void ditac_nearest_forward(const float *restrict x, float *restrict out, const float *restrict table,
                           int64_t first, int64_t runs, int64_t channels, int64_t inner, int64_t stride,
                           float scale, float shift, float top, float lo, float hi) {
    for (int64_t r = first; r < first + runs; r++) {
        const float *restrict tc = table + (r % channels) * stride;
        const float *restrict xb = x + r * inner;
        float *restrict ob = out + r * inner;
#pragma GCC ivdep
        for (int64_t i = 0; i < inner; i++) {
            float xi = xb[i], point;
            int32_t j = nearest_point(xi, scale, shift, top, &point);
            float image = lo + (hi - lo) * (point / top + tc[j]);
            float x_tilde = ((xi >= lo) & (xi <= hi)) ? image : xi;
            float gaussian;
            ob[i] = x_tilde * (0.5f + 0.5f * erf_and_gaussian(xi * SQRT1_2, &gaussian));
        }
    }
}

void ditac_nearest_backward(const float *restrict x, const float *restrict grad, float *restrict grad_x,
                            const float *restrict table, const float *restrict slope, double *restrict grad_table,
                            int64_t first, int64_t runs, int64_t channels, int64_t inner, int64_t stride,
                            float scale, float shift, float top, float lo, float hi, int32_t need_table) {
    int32_t index[BLOCK];
    float weighted[BLOCK];
    for (int64_t r = first; r < first + runs; r++) {
        const int64_t c = r % channels;
        const float *restrict tc = table + c * stride;
        const float *restrict sc = slope + c * stride;
        double *restrict gt = grad_table + c * stride;
        for (int64_t start = 0; start < inner; start += BLOCK) {
            int64_t m = inner - start < BLOCK ? inner - start : BLOCK;
            const float *restrict xb = x + r * inner + start;
            const float *restrict gb = grad + r * inner + start;
            float *restrict gxb = grad_x + r * inner + start;
#pragma GCC ivdep
            for (int64_t i = 0; i < m; i++) {
                float xi = xb[i], gi = gb[i], point;
                int32_t j = nearest_point(xi, scale, shift, top, &point);
                /* Blends with in = 1 on [a, b], 0 elsewhere, instead of selects: gcc 12 would
                 * load the table entries only under the select's mask, a masked gather it cannot
                 * emulate, and leave the loop scalar. Exact: the table values are finite, so
                 * 0·image = 0, and 0·x = 0 for the finite x on [a, b]; x = ±inf or NaN is outside. */
                float in = ((xi >= lo) & (xi <= hi)) ? 1.0f : 0.0f;
                float image = lo + (hi - lo) * (point / top + tc[j]);
                float x_tilde = in * image + (1.0f - in) * xi;
                float d_tilde = in * sc[j] + (1.0f - in);
                float gaussian;
                float cdf = 0.5f + 0.5f * erf_and_gaussian(xi * SQRT1_2, &gaussian);
                gxb[i] = gi * (d_tilde * cdf + x_tilde * (INV_SQRT_2PI * gaussian));
                index[i] = j;
                weighted[i] = ((xi >= lo) & (xi <= hi)) ? gi * cdf * (hi - lo) : 0.0f;
            }
            if (need_table) {
                for (int64_t i = 0; i < m; i++) {
                    gt[index[i]] += (double)weighted[i];
                }
            }
        }
    }
}
