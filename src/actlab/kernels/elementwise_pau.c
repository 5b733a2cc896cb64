/* PAU's native CPU kernels (actlab.activations.pau, elementwise.h): R = P/Q of degrees (m, n), from
 * the scaled monomials of pau._Monomials, x^j/s and |x|^k/s with s = 1 for |x| <= 1 and |x|^n above
 * (there with t = 1/x: sign(x)^n·t^(n-j) for j < n, sign(x)^n·x^(j-n) from n on, |t|^(n-k)), so
 * that P/Q is finite wherever R is. One op per degree pair, pau_{m}_{n}, instantiated by
 * PAU_KERNELS below for the degrees that pau._NATIVE_DEGREES lists.
 *
 * The two regimes are selects, where the torch form blends them as inside·(1 - big) + outside·big
 * (the same values: the regime not taken is finite there); a select can leave the other regime
 * anything (1/0 at x = 0, x^m = ∞ at x = 1e30). NaN needs no select of its own: |NaN| > 1 is false,
 * and the inside monomials of NaN are NaN, as in torch. Degrees are compile-time constants in every
 * instantiation, so the loops over them unroll and the monomials stay in registers.
 */
#include "elementwise.h"

/* The largest degree any instantiation may use (the monomial arrays' size). */
#define PAU_MAX_DEGREE 8

/* Per channel, from (a_0..a_m, b_1..b_n): |b_k| and sign(b_k). Not k·|b_k| and j·a_j as well: the
 * elementwise loops copy a channel's derived values with a loop of Q iterations, which gcc unrolls
 * completely (and so vectorises the "cols" loops around it) only up to 16; in "shared" and "rows"
 * those products are loop-invariant anyway. */
#define PAU_DERIVED(M, N) (2 * (N))
static inline __attribute__((always_inline)) void pau_derive(const float *p, float *q, const int m, const int n) {
    for (int k = 1; k <= n; k++) {
        q[k - 1] = __builtin_fabsf(p[m + k]);
        q[n + k - 1] = sign_of(p[m + k]);
    }
}

/* The scaled monomials (pau._Monomials): signed[j] = x^j/s for j <= m, absolute[k] = |x|^k/s for
 * k <= n. Powers by repeated multiplication, as _Monomials._power forms them; one division, t.
 * absolute[k] = |signed[k]| in both regimes (|t|^(n-k) = |sign(x)^n·t^(n-k)|, and |x|^k formed from
 * |x| rounds as x^k does), so only the signed ones need a select. */
static inline __attribute__((always_inline)) void pau_monomials(float x, const int m, const int n, float *signed_,
                                                                float *absolute) {
    int big = __builtin_fabsf(x) > 1.0f;
    float t = 1.0f / x;
    float xp[PAU_MAX_DEGREE + 1], tp[PAU_MAX_DEGREE + 1];
    xp[0] = 1.0f;
    tp[0] = 1.0f;
    const int top = m > n ? m : n; /* signed up to n as well, for absolute */
    for (int i = 1; i <= top; i++) xp[i] = xp[i - 1] * x;
    for (int i = 1; i <= n; i++) tp[i] = tp[i - 1] * t;
    /* sign(x)^n: 1 for even n; |x| > 1 where it is used, so never sign(0) */
    float sign_n = n % 2 ? sign_of(x) : 1.0f;
    for (int j = 0; j <= top; j++) signed_[j] = big ? sign_n * (j >= n ? xp[j - n] : tp[n - j]) : xp[j];
    for (int k = 0; k <= n; k++) absolute[k] = __builtin_fabsf(signed_[k]);
}

/* P/s and Q/s, summed in the torch forms' order (pau._scaled_parts: |x|^0/s + Σ_k |b_k|·|x|^k/s). */
static inline __attribute__((always_inline)) void pau_scaled(const float *signed_, const float *absolute,
                                                             const float *p, const float *q, const int m,
                                                             const int n, float *numerator, float *denominator) {
    float num = p[0] * signed_[0];
    for (int j = 1; j <= m; j++) num += p[j] * signed_[j];
    float b_terms = q[0] * absolute[1];
    for (int k = 2; k <= n; k++) b_terms += q[k - 1] * absolute[k];
    *numerator = num;
    *denominator = absolute[0] + b_terms;
}

/* pau_op's forward */
static inline __attribute__((always_inline)) float pau_value(float x, const float *p, const float *q, const int m,
                                                             const int n) {
    float signed_[PAU_MAX_DEGREE + 1], absolute[PAU_MAX_DEGREE + 1], num, den;
    pau_monomials(x, m, n, signed_, absolute);
    pau_scaled(signed_, absolute, p, q, m, n, &num, &den);
    return num / den;
}

/* pau_op's derivatives: R' = (P' - R·Q')/Q, ∂R/∂a_j = x^j/Q, ∂R/∂b_k = -R·sign(b_k)·|x|^k/Q (each
 * scaled by s alike), in the torch forms' order, with X/Q as X·(1/Q): 1/Q once, the element's second
 * and last division. -R·sign(b_k)·|x|^k is formed before it is divided by Q, as in torch: (-R/Q)·|x|^k
 * would be ∞·0 = NaN at |x| ≈ 1e30 with the presets' tiny b_n, where torch's ∂R/∂b_k is finite.
 * 1/Q itself overflows only for Q < 2^-128, i.e. outside with b_n ≈ 0 (|b_n| below ~1e-38) and |x|
 * huge (a pure polynomial, all b_k = 0, beyond |x| ≈ 4e9 for n = 4): there the quotients are ±inf or
 * NaN where torch's X/Q may still be finite (scaling Q by a power of two there would cost a
 * multiplication per quotient: the backward took a quarter longer). */
static inline __attribute__((always_inline)) float pau_partials(float x, const float *p, const float *q, float *d,
                                                                const int m, const int n) {
    float signed_[PAU_MAX_DEGREE + 1], absolute[PAU_MAX_DEGREE + 1], num, den;
    pau_monomials(x, m, n, signed_, absolute);
    pau_scaled(signed_, absolute, p, q, m, n, &num, &den);
    float inv_den = 1.0f / den;
    float r = num * inv_den;
    const float *abs_b = q, *sign_b = q + n;
    float d_num = p[1] * signed_[0];
    for (int j = 2; j <= m; j++) d_num += ((float)j * p[j]) * signed_[j - 1];
    float d_den = abs_b[0] * absolute[0];
    for (int k = 2; k <= n; k++) d_den += ((float)k * abs_b[k - 1]) * absolute[k - 1];
    d_den = sign_of(x) * d_den;
    for (int j = 0; j <= m; j++) d[j] = signed_[j] * inv_den;
    for (int k = 1; k <= n; k++) d[m + k] = -r * sign_b[k - 1] * absolute[k] * inv_den;
    return (d_num - r * d_den) * inv_den;
}

/* The kernels of pau_{M}_{N}: (M + 1) + N parameters, a_0..a_M then b_1..b_N. */
#define PAU_KERNELS(M, N)                                                                                        \
    _Static_assert((M) >= 1 && (N) >= 1 && (M) <= PAU_MAX_DEGREE && (N) <= PAU_MAX_DEGREE,                      \
                   "PAU degrees out of range");                                                                  \
    static inline void pau_##M##_##N##_derive(const float *p, float *q, const float *k) { pau_derive(p, q, M, N); } \
    static inline float pau_##M##_##N##_value(float x, const float *p, const float *q, const float *k) {         \
        return pau_value(x, p, q, M, N);                                                                         \
    }                                                                                                            \
    static inline float pau_##M##_##N##_partials(float x, const float *p, const float *q, const float *k,         \
                                                 float *d) {                                                     \
        return pau_partials(x, p, q, d, M, N);                                                                   \
    }                                                                                                            \
    ELEMENTWISE_KERNELS(pau_##M##_##N, (M) + (N) + 1, PAU_DERIVED(M, N), 0)

/* The presets' degrees (actlab/data/pau_presets.json), (5, 4) the default: pau._NATIVE_DEGREES. */
PAU_KERNELS(3, 2)
PAU_KERNELS(4, 3)
PAU_KERNELS(5, 4)
PAU_KERNELS(6, 5)
