/* u·g(u) and its derivative from one exponential and four fitted polynomials: actlab._math.FittedGate,
 * the form of Serf (g = erf∘softplus) and EELU (g(u) = erf(e^u), u = -x) in float32 graphs compiled for
 * the CPU, restated for elementwise.h's kernels (evaluated in the same order, Horner's rule included,
 * so that they agree with those graphs to about an ulp). With w = e^{-|u|}:
 *
 *   u < 0:         g = w·A(2w - 1),   (u·g)' = w·(A + max(u, -1e4)·B)(2w - 1)
 *   0 <= u <= end: g = P(t),          (u·g)' = F(t),   t = min(u, end)·(2/end) - 1
 *   u > end:       g = 1,             (u·g)' = 1
 *
 * SIMD evaluates both sides for every element and selects. The constants k are FittedGate.constants:
 * the four coefficient counts, end, 2/end, then the coefficients of A, B, P and F, constant terms first.
 * An op's counts are compile-time constants (so that Horner's rule unrolls into multiply-adds whose
 * coefficients are loaded once per loop; gcc versions the loops on k not overlapping the output,
 * the restrict qualifiers being lost in OpenMP's outlined functions): fitted_gate_derive compares
 * them with the counts in k and makes the kernels' "one" a NaN on a mismatch, so that every value
 * and derivative comes out NaN; a total that differs from FITTED_GATE_CONSTANTS is an error before
 * any kernel runs (actlab.kernels.native_elementwise checks every op's constant count).
 */
#ifndef ACTLAB_FITTED_GATE_H
#define ACTLAB_FITTED_GATE_H

#include "elementwise.h"

#define FITTED_GATE_HEADER 6 /* the counts, end, 2/end */
#define FITTED_GATE_DERIVED 1
/* How many constants an op with these coefficient counts reads (ELEMENTWISE_KERNELS' K). */
#define FITTED_GATE_CONSTANTS(...) FITTED_GATE_CONSTANTS_(__VA_ARGS__)
#define FITTED_GATE_CONSTANTS_(na, nb, np, nf) (FITTED_GATE_HEADER + (na) + (nb) + (np) + (nf))

/* Below this, u·g(u) is -0 and u is routed to 0 (FittedGate.value), or clamped to it in the
 * derivative, so that no ∞·0 arises at -inf (actlab._math._GATE_NEGLIGIBLE). */
#define FITTED_GATE_NEGLIGIBLE -1e4f

/* q[0] = 1, or NaN where k was not laid out for these counts. It stands for the 1s of the forms
 * below, costing nothing over a literal; a NaN reaches every output through them. */
static inline void fitted_gate_derive(const float *k, float *q, int na, int nb, int np, int nf) {
    int match = k[0] == (float)na && k[1] == (float)nb && k[2] == (float)np && k[3] == (float)nf;
    q[0] = match ? 1.0f : __builtin_nanf("");
}

/* FittedGate.value. Plain selects (no NaN-preserving ones, which keep gcc from vectorising): a NaN u
 * is NaN through the final product (w is NaN too); ±inf go to 0 (-inf, routed to 0 first) and to
 * u·1 = inf, as in the torch form. P is evaluated before the select, not in it: ?: evaluates only the
 * operand it picks, and gcc would load P's coefficients under a mask, which keeps the loop scalar. */
static inline __attribute__((always_inline)) float fitted_gate_value(float u, const float *k, float one, int na,
                                                                     int nb, int np, int nf) {
    const float *a = k + FITTED_GATE_HEADER, *p = a + na + nb;
    float end = k[4];
    u = u < FITTED_GATE_NEGLIGIBLE ? 0.0f : u;
    int positive = u >= 0.0f;
    float w = exp_minus_abs(u); /* actlab._math.exp_of_minus_abs */
    float t_pos = (u < end ? u : end) * k[5] - one;
    float t_neg = 2.0f * w - one;
    float poly = horner(t_pos, p, np);
    float g_pos = u > end ? one : poly;
    float g_neg = w * horner(t_neg, a, na);
    return u * (positive ? g_pos : g_neg);
}

/* FittedGate.derivative (F before the select, as P above). NaN: w is NaN on the negative side, which
 * it takes; -inf: w = 0 times a finite sum (u clamped at -1e4), not ∞·0; +inf: 1. */
static inline __attribute__((always_inline)) float fitted_gate_derivative(float u, const float *k, float one, int na,
                                                                          int nb, int np, int nf) {
    const float *a = k + FITTED_GATE_HEADER, *b = a + na, *f = b + nb + np;
    float end = k[4];
    int positive = u >= 0.0f;
    float w = exp_minus_abs(u);
    float t_pos = (u < end ? u : end) * k[5] - one;
    float t_neg = 2.0f * w - one;
    float poly = horner(t_pos, f, nf);
    float d_pos = u > end ? one : poly;
    float clamped = u > FITTED_GATE_NEGLIGIBLE ? u : FITTED_GATE_NEGLIGIBLE;
    float d_neg = w * (horner(t_neg, a, na) + clamped * horner(t_neg, b, nb));
    return positive ? d_pos : d_neg;
}

#endif
