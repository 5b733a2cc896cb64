/* SLAF's native CPU kernels, float32: the normalised power basis (basis="taylor", normalize=True)
 * here, the EMFN routine (basis="fourier", normalize="max") at the end of the file.
 *
 * The power basis: the passes over every element of
 * actlab.activations.slaf._NormalisedPowerSum as native CPU kernels, float32
 * (actlab.activations.slaf_native). The per-group arithmetic between the passes stays in torch, as
 * it does for the compiled path; each kernel here restates one stage function of slaf.py with the
 * same float32 operations per element (its sums in another order, and in double across blocks),
 * and the tests hold them against those.
 *
 * Inputs are the canonical views of actlab.kernels.layout, "shared" or "rows": runs of ``inner``
 * elements, run r belonging to channel r mod channels. Per-channel values come as (channels,)
 * vectors, per-power ones as (k, channels) tables (power p - 1 first). A part (parallel.h) covers
 * runs [first, first + runs), elements [offset, offset + length) of each; reductions write one
 * record per part, which Python merges. Sums are taken in float lanes over at most
 * ELEMENTWISE_BLOCK elements, then in double.
 */
#include <math.h>
#include <stdint.h>

#include "elementwise.h"

/* The total of four vectors of lanes, pairwise. */
static inline double slaf_four_lanes_total(elementwise_lanes *lanes) {
    lanes[0] += lanes[2];
    lanes[1] += lanes[3];
    lanes[0] += lanes[1];
    return (double)elementwise_lanes_total(&lanes[0]);
}

/* Σ s[i] (square 0) or Σ (s[i] - shift)² (square 1), i < m, in four vectors of ELEMENTWISE_LANES float
 * lanes (one accumulator waits on each addition in turn: the moments took three times as long),
 * added pairwise at the end. */
static inline __attribute__((always_inline)) double slaf_block_sum(const float *restrict s, float shift, int64_t m,
                                                                   const int square) {
    elementwise_lanes lanes[4] = {{0}, {0}, {0}, {0}};
    int64_t i = 0;
    for (; i + 4 * ELEMENTWISE_LANES <= m; i += 4 * ELEMENTWISE_LANES)
        for (int a = 0; a < 4; a++) {
            elementwise_lanes v;
            memcpy(&v, s + i + a * ELEMENTWISE_LANES, sizeof v);
            lanes[a] += square ? (v - shift) * (v - shift) : v;
        }
    for (; i < m; i++) lanes[0][0] += square ? (s[i] - shift) * (s[i] - shift) : s[i];
    return slaf_four_lanes_total(lanes);
}

/* max|x| per channel: the groups' exponents come from it (slaf._batch_exponent). Taken on the bit
 * patterns of |x| as integers, which order the non-negative floats as their values do and put every
 * NaN above +inf, so NaN wins as in amax; an integer maximum vectorises, where gcc keeps a float
 * one (a select that must mind NaN) scalar. out: channels floats per part. */
typedef uint32_t slaf_bits __attribute__((may_alias)); /* a float's bits, read in place */

static void slaf_max_abs_part(const int64_t *p, const float *restrict x, float *restrict mx, int64_t channels,
                              int64_t inner) {
    for (int64_t c = 0; c < channels; c++) mx[c] = 0.0f;
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const slaf_bits *restrict bits = (const slaf_bits *)(x + r * inner + p[2]);
        const int64_t c = r % channels;
        uint32_t top;
        memcpy(&top, &mx[c], sizeof top);
        for (int64_t j = 0; j < p[3]; j++) {
            uint32_t a = bits[j] & 0x7fffffffu;
            top = a > top ? a : top;
        }
        memcpy(&mx[c], &top, sizeof top);
    }
}

void slaf_max_abs_parts(const int64_t *parts, int64_t count, const float *x, float *out, int64_t channels,
                        int64_t inner) {
    FOR_EACH_PART(parts, count, 4, slaf_max_abs_part(p, x, out + i * channels, channels, inner));
}

/* The elementwise stages evaluate every power of an element before the next element, with the
 * degree a compile-time constant up to 8 (SLAF_DEGREES; the loops over powers unrolled and the
 * channel's values in registers, as inductor's loops have them: a block at a time, power after
 * power, they took a third longer); degrees 9..SLAF_MAX_DEGREE run the same code with k known at
 * run time. Higher degrees are not taken (slaf_native.MAX_DEGREE, checked against slaf_max_degree()
 * when the library is loaded). */
#define SLAF_MAX_DEGREE 16

int32_t slaf_max_degree(void) { return SLAF_MAX_DEGREE; }

/* CALL(VALUE) with VALUE a compile-time constant from 1 to 8 (the loops over it unrolled), else as it is. */
#define SLAF_UNROLLED(VALUE, CALL)                                                                            \
    switch (VALUE) {                                                                                          \
    case 1: CALL(1); break;                                                                                   \
    case 2: CALL(2); break;                                                                                   \
    case 3: CALL(3); break;                                                                                   \
    case 4: CALL(4); break;                                                                                   \
    case 5: CALL(5); break;                                                                                   \
    case 6: CALL(6); break;                                                                                   \
    case 7: CALL(7); break;                                                                                   \
    case 8: CALL(8); break;                                                                                   \
    default: CALL(VALUE);                                                                                     \
    }
#define SLAF_DEGREES(CALL) SLAF_UNROLLED(k, CALL)

/* power = u (first) or power·u, and Σ power, in one pass over a block: four vectors of lanes, then the
 * tail, added pairwise. */
static inline double slaf_next_power_sum(float *restrict power, const float *restrict u, int64_t m, int first) {
    elementwise_lanes lanes[4] = {{0}, {0}, {0}, {0}};
    int64_t i = 0;
    for (; i + 4 * ELEMENTWISE_LANES <= m; i += 4 * ELEMENTWISE_LANES)
        for (int a = 0; a < 4; a++) {
            elementwise_lanes v, w;
            memcpy(&v, u + i + a * ELEMENTWISE_LANES, sizeof v);
            memcpy(&w, power + i + a * ELEMENTWISE_LANES, sizeof w);
            w = first ? v : w * v;
            memcpy(power + i + a * ELEMENTWISE_LANES, &w, sizeof w);
            lanes[a] += w;
        }
    for (; i < m; i++) {
        power[i] = first ? u[i] : power[i] * u[i];
        lanes[0][0] += power[i];
    }
    return slaf_four_lanes_total(lanes);
}

/* Mean and centred sum of squares of u^p, p = 1..k, per channel (slaf._power_moments), by blocks of
 * ELEMENTWISE_BLOCK elements: each block's own mean and centred squares first, power after power,
 * each power formed and summed in one pass (the block sits in L1; in two passes the kernel took 2.5
 * ms on 128×32×28×28 floats, 1.8 ms in one; evaluating every power of an element at once, with the
 * sums in lanes, took two to three times as long), merged into the channel's record in double by
 * Chan's formula,
 * so that no Σu^2p - (Σu^p)²/n cancels. out: per part and channel 1 + 2k doubles: the count, the
 * k means, the k centred sums of squares. */
static void slaf_moments_part(const int64_t *p, const float *restrict x, const float *restrict inv_s,
                              double *restrict rec, int64_t channels, int64_t inner, int32_t k) {
    for (int64_t j = 0; j < channels * (1 + 2 * (int64_t)k); j++) rec[j] = 0.0;
    float u[ELEMENTWISE_BLOCK], power[ELEMENTWISE_BLOCK];
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const int64_t c = r % channels;
        double *restrict record = rec + c * (1 + 2 * (int64_t)k);
        const float *restrict xr = x + r * inner + p[2];
        for (int64_t s = 0; s < p[3]; s += ELEMENTWISE_BLOCK) {
            const int64_t m = p[3] - s < ELEMENTWISE_BLOCK ? p[3] - s : ELEMENTWISE_BLOCK;
            for (int64_t j = 0; j < m; j++) u[j] = xr[s + j] * inv_s[c];
            const double before = record[0], total = before + (double)m;
            for (int q = 0; q < k; q++) {
                const float mean = (float)(slaf_next_power_sum(power, u, m, q == 0) / (double)m);
                const double delta = (double)mean - record[1 + q];
                record[1 + q] += delta * (double)m / total;
                record[1 + k + q] += slaf_block_sum(power, mean, m, 1) + delta * delta * before * (double)m / total;
            }
            record[0] = total;
        }
    }
}

void slaf_moments_parts(const int64_t *parts, int64_t count, const float *x, const float *inv_s, double *out,
                        int64_t channels, int64_t inner, int32_t k) {
    FOR_EACH_PART(parts, count, 4,
                  slaf_moments_part(p, x, inv_s, out + i * channels * (1 + 2 * (int64_t)k), channels, inner, k));
}

/* y = b + Σ_p (u^p - mean_p)·coef_p (slaf._centred_power_sum: training). */
static inline __attribute__((always_inline)) void slaf_centred_run(const float *restrict x, float *restrict y,
                                                                   int64_t m, float inv_s, const float *mean,
                                                                   const float *coef, float bias, const int k) {
    for (int64_t j = 0; j < m; j++) {
        float u = x[j] * inv_s, power = u, out = bias;
        for (int q = 0; q < k; q++) {
            if (q > 0) power *= u;
            out += (power - mean[q]) * coef[q];
        }
        y[j] = out;
    }
}

static void slaf_centred_part(const int64_t *p, const float *restrict x, float *restrict y,
                              const float *restrict inv_s, const float *restrict means, const float *restrict coefs,
                              const float *restrict bias, int64_t channels, int64_t inner, int32_t k) {
    float mean[SLAF_MAX_DEGREE], coef[SLAF_MAX_DEGREE];
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const int64_t c = r % channels, at = r * inner + p[2];
        elementwise_channel(means, channels, c, k, mean);
        elementwise_channel(coefs, channels, c, k, coef);
#define SLAF_CENTRED(K) slaf_centred_run(x + at, y + at, p[3], inv_s[c], mean, coef, bias[c], K)
        SLAF_DEGREES(SLAF_CENTRED)
#undef SLAF_CENTRED
    }
}

void slaf_centred_parts(const int64_t *parts, int64_t count, const float *x, float *y, const float *inv_s,
                        const float *means, const float *coefs, const float *bias, int64_t channels, int64_t inner,
                        int32_t k) {
    FOR_EACH_PART(parts, count, 4, slaf_centred_part(p, x, y, inv_s, means, coefs, bias, channels, inner, k));
}

/* y = constant + Σ_p coef_p·u^p by Horner's scheme (slaf._power_polynomial: evaluation). */
static inline __attribute__((always_inline)) void slaf_polynomial_run(const float *restrict x, float *restrict y,
                                                                      int64_t m, float inv_s, const float *coef,
                                                                      float constant, const int k) {
    for (int64_t j = 0; j < m; j++) {
        float u = x[j] * inv_s, out = coef[k - 1];
        for (int q = k - 2; q >= 0; q--) out = out * u + coef[q];
        y[j] = out * u + constant;
    }
}

static void slaf_polynomial_part(const int64_t *p, const float *restrict x, float *restrict y,
                                 const float *restrict inv_s, const float *restrict coefs,
                                 const float *restrict constant, int64_t channels, int64_t inner, int32_t k) {
    float coef[SLAF_MAX_DEGREE];
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const int64_t c = r % channels, at = r * inner + p[2];
        elementwise_channel(coefs, channels, c, k, coef);
#define SLAF_POLYNOMIAL(K) slaf_polynomial_run(x + at, y + at, p[3], inv_s[c], coef, constant[c], K)
        SLAF_DEGREES(SLAF_POLYNOMIAL)
#undef SLAF_POLYNOMIAL
    }
}

void slaf_polynomial_parts(const int64_t *parts, int64_t count, const float *x, float *y, const float *inv_s,
                           const float *coefs, const float *constant, int64_t channels, int64_t inner, int32_t k) {
    FOR_EACH_PART(parts, count, 4, slaf_polynomial_part(p, x, y, inv_s, coefs, constant, channels, inner, k));
}

/* One run's Σg into sums[0] and Σ g·N_p, N_p = (u^p - mean_p)·inv_denom_p, into sums[p]: the shares
 * of ELEMENTWISE_LANES elements go through the stack into one vector of lanes per power (as the
 * elementwise kernels' parameter sums), each ELEMENTWISE_BLOCK elements' lanes then into double. */
static inline __attribute__((always_inline)) void slaf_grad_sums_run(const float *restrict x,
                                                                     const float *restrict g, int64_t m,
                                                                     float inv_s, const float *mean,
                                                                     const float *inv_denom, double *restrict sums,
                                                                     const int powers, const int k) {
    for (int64_t s = 0; s < m; s += ELEMENTWISE_BLOCK) {
        const int64_t n = m - s < ELEMENTWISE_BLOCK ? m - s : ELEMENTWISE_BLOCK;
        const float *restrict xb = x + s, *restrict gb = g + s;
        sums[0] += slaf_block_sum(gb, 0.0f, n, 0);
        if (!powers) continue;
        elementwise_lanes lanes[k];
        for (int q = 0; q < k; q++) lanes[q] = (elementwise_lanes){0};
        int64_t j0 = 0;
        for (; j0 + ELEMENTWISE_LANES <= n; j0 += ELEMENTWISE_LANES) {
            float shares[k][ELEMENTWISE_LANES];
            for (int l = 0; l < ELEMENTWISE_LANES; l++) {
                float u = xb[j0 + l] * inv_s, power = u, gj = gb[j0 + l];
                for (int q = 0; q < k; q++) {
                    if (q > 0) power *= u;
                    shares[q][l] = gj * ((power - mean[q]) * inv_denom[q]);
                }
            }
            for (int q = 0; q < k; q++) {
                elementwise_lanes v;
                memcpy(&v, shares[q], sizeof v);
                lanes[q] += v;
            }
        }
        for (int64_t j = j0; j < n; j++) {
            float u = xb[j] * inv_s, power = u, gj = gb[j];
            for (int q = 0; q < k; q++) {
                if (q > 0) power *= u;
                lanes[q][0] += gj * ((power - mean[q]) * inv_denom[q]);
            }
        }
        for (int q = 0; q < k; q++) sums[1 + q] += (double)elementwise_lanes_total(&lanes[q]);
    }
}

static void slaf_grad_sums_part(const int64_t *p, const float *restrict x, const float *restrict g,
                                const float *restrict inv_s, const float *restrict means,
                                const float *restrict inv_denoms, double *restrict rec, int64_t channels,
                                int64_t inner, int32_t k, int32_t powers) {
    for (int64_t j = 0; j < channels * (1 + (int64_t)k); j++) rec[j] = 0.0;
    float mean[SLAF_MAX_DEGREE], inv_denom[SLAF_MAX_DEGREE];
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const int64_t c = r % channels, at = r * inner + p[2];
        elementwise_channel(means, channels, c, k, mean);
        elementwise_channel(inv_denoms, channels, c, k, inv_denom);
        double *restrict sums = rec + c * (1 + (int64_t)k);
#define SLAF_GRAD_SUMS(K) slaf_grad_sums_run(x + at, g + at, p[3], inv_s[c], mean, inv_denom, sums, powers, K)
        SLAF_DEGREES(SLAF_GRAD_SUMS)
#undef SLAF_GRAD_SUMS
    }
}

/* Σg and, if ``powers``, Σ g·N_p per channel (slaf._power_grad_sums). out: per part and channel
 * 1 + k doubles. */
void slaf_grad_sums_parts(const int64_t *parts, int64_t count, const float *x, const float *g, const float *inv_s,
                          const float *means, const float *inv_denoms, double *out, int64_t channels, int64_t inner,
                          int32_t k, int32_t powers) {
    FOR_EACH_PART(parts, count, 4,
                  slaf_grad_sums_part(p, x, g, inv_s, means, inv_denoms, out + i * channels * (1 + (int64_t)k),
                                      channels, inner, k, powers));
}

/* Training dL/dx = inv_s·Σ_p (g·alpha_p - beta_p - N_p·gamma_p)·p·u^(p-1)
 * (slaf._centred_power_sum_input_grad). */
static inline __attribute__((always_inline)) void slaf_input_grad_run(const float *restrict x,
                                                                      const float *restrict g,
                                                                      float *restrict gx, int64_t m, float inv_s,
                                                                      const float *mean, const float *inv_denom,
                                                                      const float *alpha, const float *beta,
                                                                      const float *gamma, const int k) {
    for (int64_t j = 0; j < m; j++) {
        float u = x[j] * inv_s, gj = g[j], previous = 1.0f, power = u;
        float total = (gj * alpha[0] - beta[0] - ((u - mean[0]) * inv_denom[0]) * gamma[0]) * 1.0f;
        for (int q = 1; q < k; q++) {
            previous = power;
            power = previous * u;
            float n_p = (power - mean[q]) * inv_denom[q];
            total += (gj * alpha[q] - beta[q] - n_p * gamma[q]) * ((float)(q + 1) * previous);
        }
        gx[j] = total * inv_s;
    }
}

static void slaf_input_grad_part(const int64_t *p, const float *restrict x, const float *restrict g,
                                 float *restrict gx, const float *restrict inv_s, const float *restrict means,
                                 const float *restrict inv_denoms, const float *restrict alphas,
                                 const float *restrict betas, const float *restrict gammas, int64_t channels,
                                 int64_t inner, int32_t k) {
    float mean[SLAF_MAX_DEGREE], inv_denom[SLAF_MAX_DEGREE], alpha[SLAF_MAX_DEGREE], beta[SLAF_MAX_DEGREE],
        gamma[SLAF_MAX_DEGREE];
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const int64_t c = r % channels, at = r * inner + p[2];
        elementwise_channel(means, channels, c, k, mean);
        elementwise_channel(inv_denoms, channels, c, k, inv_denom);
        elementwise_channel(alphas, channels, c, k, alpha);
        elementwise_channel(betas, channels, c, k, beta);
        elementwise_channel(gammas, channels, c, k, gamma);
#define SLAF_INPUT_GRAD(K)                                                                                   \
    slaf_input_grad_run(x + at, g + at, gx + at, p[3], inv_s[c], mean, inv_denom, alpha, beta, gamma, K)
        SLAF_DEGREES(SLAF_INPUT_GRAD)
#undef SLAF_INPUT_GRAD
    }
}

void slaf_input_grad_parts(const int64_t *parts, int64_t count, const float *x, const float *g, float *gx,
                           const float *inv_s, const float *means, const float *inv_denoms, const float *alpha,
                           const float *beta, const float *gamma, int64_t channels, int64_t inner, int32_t k) {
    FOR_EACH_PART(parts, count, 4,
                  slaf_input_grad_part(p, x, g, gx, inv_s, means, inv_denoms, alpha, beta, gamma, channels, inner, k));
}

/* Evaluation dL/dx = g·(d/du Σ_p coef_p·u^p)·inv_s, the slope by Horner's scheme on p·coef_p
 * (slaf._power_polynomial_input_grad, slaf._horner_slope). */
static inline __attribute__((always_inline)) void slaf_polynomial_input_grad_run(
    const float *restrict x, const float *restrict g, float *restrict gx, int64_t m, float inv_s,
    const float *slope_coef, const int k) {
    for (int64_t j = 0; j < m; j++) {
        float u = x[j] * inv_s, slope = slope_coef[k - 1];
        if (k > 1) {
            for (int q = k - 2; q >= 1; q--) slope = slope * u + slope_coef[q];
            slope = slope * u + slope_coef[0];
        }
        gx[j] = g[j] * slope * inv_s;
    }
}

static void slaf_polynomial_input_grad_part(const int64_t *p, const float *restrict x, const float *restrict g,
                                            float *restrict gx, const float *restrict inv_s,
                                            const float *restrict coefs, int64_t channels, int64_t inner,
                                            int32_t k) {
    float slope_coef[SLAF_MAX_DEGREE];
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const int64_t c = r % channels, at = r * inner + p[2];
        /* p·coef_p, as slaf._horner_slope scales them */
        for (int q = 0; q < k; q++) slope_coef[q] = (float)(q + 1) * coefs[q * channels + c];
#define SLAF_POLYNOMIAL_INPUT_GRAD(K)                                                                         \
    slaf_polynomial_input_grad_run(x + at, g + at, gx + at, p[3], inv_s[c], slope_coef, K)
        SLAF_DEGREES(SLAF_POLYNOMIAL_INPUT_GRAD)
#undef SLAF_POLYNOMIAL_INPUT_GRAD
    }
}

void slaf_polynomial_input_grad_parts(const int64_t *parts, int64_t count, const float *x, const float *g, float *gx,
                                      const float *inv_s, const float *coefs, int64_t channels, int64_t inner,
                                      int32_t k) {
    FOR_EACH_PART(parts, count, 4,
                  slaf_polynomial_input_grad_part(p, x, g, gx, inv_s, coefs, channels, inner, k));
}

/* ---- The Fourier basis scaled per sample (basis="fourier", normalize="max": the EMFN routine) ----
 *
 * slaf._basis_sum_forward and _basis_sum_backward for that routine with coefficients shared by every
 * channel, on samples laid out as runs (run r is sample r, or one sample split into parts). With
 * u = x/(m·M + n) per sample and θ = (π/2)·u (rounded as torch rounds it), every element is a
 * Chebyshev polynomial of s = sin θ (slaf._fourier_terms_from_sine): term i = sign_i·T_{n_i}(s), its
 * derivative sign_i·n_i·U_{n_i - 1}(s)·(π/2)cos θ. The kernels take coef[n] = w_i·sign_i for the
 * element of order n (0 for orders the basis has not), as slaf_native._coefficients makes them;
 * SLAF_MAX_ORDER bounds n. */
#define SLAF_MAX_ORDER 32

int32_t slaf_max_order(void) { return SLAF_MAX_ORDER; }

/* sin θ and cos θ for |θ| <= 2^11·π/2 (Python routes larger arguments to torch): θ - j·π/2, j the
 * nearest integer to θ·2/π, in three parts of π/2 (Cody-Waite; exact for these j), then Taylor
 * polynomials on |r| <= π/4 (truncation below 3e-8 relative) and the quadrant of j. */
static inline void slaf_sincos(float theta, float *sine, float *cosine) {
    const float shift = 12582912.0f; /* 1.5·2^23: rounds to the nearest integer */
    float j = (theta * 0.636619772367581343f + shift) - shift;
    float r = theta - j * 1.5703125f - j * 4.83751296997070312e-4f - j * 7.54978995489188216e-8f;
    float r2 = r * r;
    /* r - r³/3! + r⁵/5! - r⁷/7! + r⁹/9! and 1 - r²/2! + r⁴/4! - r⁶/6! + r⁸/8! */
    float sr = -1.98412698412698413e-4f + r2 * 2.75573192239858907e-6f;
    sr = r + r * r2 * (-1.66666666666666667e-1f + r2 * (8.33333333333333333e-3f + r2 * sr));
    float cr = -1.38888888888888889e-3f + r2 * 2.48015873015873016e-5f;
    cr = 1.0f + r2 * (-0.5f + r2 * (4.16666666666666667e-2f + r2 * cr));
    int quadrant = (int)j & 3;
    float s = quadrant & 1 ? cr : sr, c = quadrant & 1 ? sr : cr;
    *sine = quadrant & 2 ? -s : s;
    *cosine = (quadrant == 1) | (quadrant == 2) ? -c : c;
}

#define SLAF_ORDERS(CALL) SLAF_UNROLLED(n_max, CALL)

/* T_1..T_N(s) into t[1..N] (t[0] = 1), U_0..U_{N-1}(s) into v[0..N-1] when derivative (slaf's
 * recurrences, in their order of operations). */
static inline __attribute__((always_inline)) void slaf_chebyshev(float s, float *t, float *v, int derivative,
                                                                 const int n_max) {
    t[0] = 1.0f;
    t[1] = s;
    v[0] = 1.0f;
    for (int n = 2; n <= n_max; n++) {
        t[n] = 2.0f * s * t[n - 1] - t[n - 2];
        if (derivative) v[n - 1] = 2.0f * s * v[n - 2] - (n > 2 ? v[n - 3] : 0.0f);
    }
}

/* y = b + Σ_n coef_n·T_n(sin θ), θ = (π/2)·x/denominator, coef_n = w_i·sign_i for the basis element of
 * order n (0 for orders the basis has not). x/denominator as x times the sample's 1/denominator (within
 * an ulp of torch's quotient): with two divisions per element the backward took 7.5 ms on 128×32×28×28
 * floats, 6.5 ms without. */
static inline __attribute__((always_inline)) void slaf_fourier_run(const float *restrict x, float *restrict y,
                                                                   int64_t m, float denominator, const float *coef,
                                                                   float bias, const int n_max) {
    const float inverse = 1.0f / denominator;
    for (int64_t j = 0; j < m; j++) {
        float u = x[j] * inverse, s, c, t[SLAF_MAX_ORDER + 1], v[SLAF_MAX_ORDER + 1];
        slaf_sincos(1.57079637f * u, &s, &c);
        slaf_chebyshev(s, t, v, 0, n_max);
        float out = bias;
        for (int n = 1; n <= n_max; n++) out += coef[n] * t[n];
        y[j] = out;
    }
}

static void slaf_fourier_forward_part(const int64_t *p, const float *restrict x, float *restrict y,
                                      const float *restrict denominators, const float *restrict coef, float bias,
                                      int64_t samples, int64_t inner, int32_t n_max) {
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const int64_t at = r * inner + p[2];
        const float denominator = denominators[r % samples];
#define SLAF_FOURIER(N) slaf_fourier_run(x + at, y + at, p[3], denominator, coef, bias, N)
        SLAF_ORDERS(SLAF_FOURIER)
#undef SLAF_FOURIER
    }
}

/* The EMFN forward (slaf._basis_sum_forward): samples of ``inner`` elements, one denominator m·M + n
 * each; coef: n_max + 1 floats (coef[0] unused). */
void slaf_fourier_forward_parts(const int64_t *parts, int64_t count, const float *x, float *y,
                                const float *denominators, const float *coef, const float *bias, int64_t samples,
                                int64_t inner, int32_t n_max) {
    FOR_EACH_PART(parts, count, 4,
                  slaf_fourier_forward_part(p, x, y, denominators, coef, bias[0], samples, inner, n_max));
}

/* One element's slope Σ_n coef_n·n·U_{n-1}(s)·(π/2)cos θ and T_1..T_N (into t). */
static inline __attribute__((always_inline)) float slaf_fourier_slope(float u, float *t, const float *coef,
                                                                      const int n_max) {
    float s, c, v[SLAF_MAX_ORDER + 1];
    slaf_sincos(1.57079637f * u, &s, &c);
    slaf_chebyshev(s, t, v, 1, n_max);
    float half_pi_cos = 1.57079637f * c, slope = 0.0f;
    for (int n = 1; n <= n_max; n++) slope += coef[n] * ((float)n * v[n - 1] * half_pi_cos);
    return slope;
}

/* Per sample: Σg, Σ g·T_n (n = 1..N), Σ g·slope·u and the count of |x| = M, into record[0..N + 2];
 * in lanes of ELEMENTWISE_LANES elements, as the gradient sums of the power basis. */
static inline __attribute__((always_inline)) void slaf_fourier_sums_run(const float *restrict x,
                                                                        const float *restrict g, int64_t m,
                                                                        float denominator, float maximum,
                                                                        const float *coef, double *restrict record,
                                                                        const int n_max) {
    enum { EXTRA = 3 };
    const float inverse = 1.0f / denominator;
    for (int64_t s0 = 0; s0 < m; s0 += ELEMENTWISE_BLOCK) {
        const int64_t n = m - s0 < ELEMENTWISE_BLOCK ? m - s0 : ELEMENTWISE_BLOCK;
        const float *restrict xb = x + s0, *restrict gb = g + s0;
        elementwise_lanes lanes[n_max + EXTRA];
        for (int q = 0; q < n_max + EXTRA; q++) lanes[q] = (elementwise_lanes){0};
        for (int64_t j0 = 0; j0 < n; j0 += ELEMENTWISE_LANES) {
            float shares[n_max + EXTRA][ELEMENTWISE_LANES];
            for (int l = 0; l < ELEMENTWISE_LANES; l++) {
                /* past the block's end: zero shares (g = 0 and no hit) */
                int inside = j0 + l < n;
                float xj = inside ? xb[j0 + l] : 0.0f, gj = inside ? gb[j0 + l] : 0.0f;
                float u = xj * inverse, t[SLAF_MAX_ORDER + 1];
                float slope = slaf_fourier_slope(u, t, coef, n_max);
                shares[0][l] = gj;
                for (int q = 1; q <= n_max; q++) shares[q][l] = gj * t[q];
                shares[n_max + 1][l] = gj * slope * u;
                shares[n_max + 2][l] = inside && __builtin_fabsf(xj) == maximum ? 1.0f : 0.0f;
            }
            for (int q = 0; q < n_max + EXTRA; q++) {
                elementwise_lanes w;
                memcpy(&w, shares[q], sizeof w);
                lanes[q] += w;
            }
        }
        for (int q = 0; q < n_max + EXTRA; q++) record[q] += (double)elementwise_lanes_total(&lanes[q]);
    }
}

static void slaf_fourier_sums_part(const int64_t *p, const float *restrict x, const float *restrict g,
                                   const float *restrict denominators, const float *restrict maxima,
                                   const float *restrict coef, double *restrict rec, int64_t samples,
                                   int64_t inner, int32_t n_max) {
    const int64_t width = n_max + 3;
    for (int64_t j = 0; j < samples * width; j++) rec[j] = 0.0;
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const int64_t at = r * inner + p[2], sample = r % samples;
#define SLAF_FOURIER_SUMS(N)                                                                                  \
    slaf_fourier_sums_run(x + at, g + at, p[3], denominators[sample], maxima[sample], coef, rec + sample * width, N)
        SLAF_ORDERS(SLAF_FOURIER_SUMS)
#undef SLAF_FOURIER_SUMS
    }
}

/* The EMFN backward's reductions (slaf._basis_sum_backward). out: per part and sample n_max + 3
 * doubles: Σg, Σ g·T_n, Σ g·slope·u, the count of elements at the maximum. */
void slaf_fourier_sums_parts(const int64_t *parts, int64_t count, const float *x, const float *g,
                             const float *denominators, const float *maxima, const float *coef, double *out,
                             int64_t samples, int64_t inner, int32_t n_max) {
    FOR_EACH_PART(parts, count, 4,
                  slaf_fourier_sums_part(p, x, g, denominators, maxima, coef, out + i * samples * (n_max + 3),
                                         samples, inner, n_max));
}

/* dL/dx = g·slope/denominator, plus sign(x)·g_max/count at the sample's maximum (amax's backward). */
static inline __attribute__((always_inline)) void slaf_fourier_input_grad_run(
    const float *restrict x, const float *restrict g, float *restrict gx, int64_t m, float denominator,
    float maximum, float at_maximum, const float *coef, const int n_max) {
    const float inverse = 1.0f / denominator;
    for (int64_t j = 0; j < m; j++) {
        float u = x[j] * inverse, t[SLAF_MAX_ORDER + 1];
        float out = g[j] * slaf_fourier_slope(u, t, coef, n_max) * inverse;
        gx[j] = __builtin_fabsf(x[j]) == maximum ? out + sign_of(x[j]) * at_maximum : out;
    }
}

static void slaf_fourier_input_grad_part(const int64_t *p, const float *restrict x, const float *restrict g,
                                         float *restrict gx, const float *restrict denominators,
                                         const float *restrict maxima, const float *restrict at_maxima,
                                         const float *restrict coef, int64_t samples, int64_t inner,
                                         int32_t n_max) {
    for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        const int64_t at = r * inner + p[2], sample = r % samples;
#define SLAF_FOURIER_INPUT_GRAD(N)                                                                            \
    slaf_fourier_input_grad_run(x + at, g + at, gx + at, p[3], denominators[sample], maxima[sample],          \
                                at_maxima[sample], coef, N)
        SLAF_ORDERS(SLAF_FOURIER_INPUT_GRAD)
#undef SLAF_FOURIER_INPUT_GRAD
    }
}

/* The EMFN input gradient; at_maxima: g_max/count per sample (slaf._basis_sum_backward). */
void slaf_fourier_input_grad_parts(const int64_t *parts, int64_t count, const float *x, const float *g, float *gx,
                                   const float *denominators, const float *maxima, const float *at_maxima,
                                   const float *coef, int64_t samples, int64_t inner, int32_t n_max) {
    FOR_EACH_PART(parts, count, 4,
                  slaf_fourier_input_grad_part(p, x, g, gx, denominators, maxima, at_maxima, coef, samples, inner,
                                               n_max));
}
