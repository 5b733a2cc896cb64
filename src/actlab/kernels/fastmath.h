/* Elementary functions for actlab's C kernels, float32, inline and branch-free so that gcc
 * vectorises the loops that call them: an out-of-line call (libm's, or ATen's Sleef exp in
 * inductor's loops) keeps a loop scalar, or spills its vector registers around every call.
 *
 * Each follows a torch formula that the tests hold it against (actlab._math and the activations'
 * fused forms), to about float32 rounding.
 */
#ifndef ACTLAB_FASTMATH_H
#define ACTLAB_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* e^x for x <= 0, to float32 precision (about 1e-7 relative); 0 below -87 (where the float32 result
 * is at most 1.7e-38), NaN for NaN. Cody-Waite reduction x = n·ln2 + r, |r| <= ln2/2, and a degree-6
 * polynomial for e^r, evaluated in Estrin's scheme (a shorter chain of dependent operations than
 * Horner's: APA, with two exponentials in a row, ran about a tenth faster). n = round(x/ln2) comes
 * from adding 1.5·2^23, which leaves n in the low bits of the sum; those bits give 2^n without a
 * conversion to integer. Below -87 the sum's bits are meaningless (and at -inf, or -1e30, so are n
 * and r), which the final select covers; unsigned arithmetic keeps that free of overflow. */
static inline float exp_nonpositive(float x) {
    const float shift = 12582912.0f; /* 1.5·2^23 */
    float shifted = x * 1.44269504088896341f + shift;
    float n = shifted - shift;
    float r = x - n * 0.693145751953125f - n * 1.428606765330187045e-06f;
    float r2 = r * r;
    float c3 = 1.6666665459e-1f + 4.1665795894e-2f * r;
    float c5 = 8.3334519073e-3f + 1.3981999507e-3f * r + 1.9875691500e-4f * r2;
    float p = (r + 5.0000001201e-1f * r2) + (c3 + c5 * r2) * (r2 * r) + 1.0f;
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    /* shifted's bit pattern is 0x4B400000 (1.5·2^23's) + n: the biased exponent n + 127, shifted
     * into place */
    bits = (bits + (uint32_t)(127 - 0x4B400000)) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x < -87.0f ? 0.0f : p * two_n;
}

/* sign(u): -1, 0 or 1, and 0 for NaN (torch.sign keeps it: callers that need the NaN select it
 * once at the end, since chains of NaN-preserving selects keep gcc from vectorising). */
static inline float sign_of(float u) { return (float)((u > 0.0f) - (u < 0.0f)); }

/* e^{-|x|} (never overflows): the one exponential that the sigmoid, softplus and most
 * activations' fused forms are built from (actlab._math.exp_of_minus_abs). */
static inline float exp_minus_abs(float x) { return exp_nonpositive(x < 0.0f ? x : -x); }

/* σ(z) from e = e^{-|z|}: 1/(1 + e) for z >= 0, e/(1 + e) below: one division, no overflow. */
static inline float sigmoid_from(float z, float e) {
    float r = 1.0f / (1.0f + e);
    return z >= 0.0f ? r : e * r;
}

static inline float sigmoid(float z) { return sigmoid_from(z, exp_minus_abs(z)); }

/* log(1 + e) for 0 <= e <= 1: 2·atanh(s), s = e/(2 + e) <= 1/3, seven terms of the series
 * (actlab._math.log1p_of_unit, the same cut for float32). */
static inline float log1p_of_unit(float e) {
    float s = e / (2.0f + e);
    float s2 = s * s;
    float p = 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

/* softplus(x) = max(x, 0) + log1p(e^{-|x|}), with e = e^{-|x|} given (actlab._math.softplus_by_series). */
static inline float softplus_from(float x, float e) { return (x > 0.0f ? x : 0.0f) + log1p_of_unit(e); }

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

/* Σ c[k]·t^k, k < n, by Horner's rule (constant term first, actlab._math.horner); with n a
 * compile-time constant the loop unrolls into n - 1 fused multiply-adds. The pragma: gcc peels
 * only loops of up to 16 iterations by itself (--param max-completely-peel-times), and a loop
 * left in the body keeps the element loop scalar (Serf's and EELU's polynomials have 19 terms). */
static inline float horner(float t, const float *c, int n) {
    float acc = c[n - 1];
#pragma GCC unroll 32
    for (int k = n - 2; k >= 0; k--) acc = acc * t + c[k];
    return acc;
}

#endif
