/* Soft-Root-Sign's native CPU kernels (actlab.activations.srs, elementwise.h): x/(x/α + e^{-x/β}),
 * as srs._value_and_reciprocal evaluates it, from G = e^{-|x|/β} <= 1 (never overflows) and one
 * division, 1/D: SRS = x·G/D with D = x·G/α + 1 for x < 0, x/D with D = x/α + G for x >= 0, and
 * α where x/α overflows (1/D = 0, x·(1/D) = ∞·0). Every other quotient is a product with the
 * per-channel reciprocals of srs_derive.
 */
#include "elementwise.h"

/* 1/α, 1/β and 1/β² (srs._value_and_reciprocal, srs._derivatives) */
static inline void srs_derive(const float *p, float *q, const float *k) {
    float inv_beta = 1.0f / p[1];
    q[0] = 1.0f / p[0];
    q[1] = inv_beta;
    q[2] = inv_beta * inv_beta;
}

/* SRS, G, x·G and 1/D (srs._value_and_reciprocal). The two sides are selects, not branches; a NaN
 * or ±∞ input gives what the torch form gives (NaN, except α at +∞) with no case of its own. */
typedef struct {
    float y, g, xg, r;
} srs_parts;

static inline srs_parts srs_evaluate(float x, const float *p, const float *q) {
    srs_parts o;
    float inv_alpha = q[0];
    o.g = exp_nonpositive(-__builtin_fabsf(x) * q[1]);
    o.xg = x * o.g;
    int negative = x < 0.0f;
    float numerator = negative ? o.xg : x;
    /* D apart: gcc's front end folds 1/(c ? a : b) into c ? 1/a : 1/b, two divisions per element. */
    float denominator = negative ? o.xg * inv_alpha + 1.0f : x * inv_alpha + o.g;
    o.r = 1.0f / denominator;
    /* srs._value_and_reciprocal tests 1/D = 0 only for x >= 0; for x < 0, D = x·G/α + 1 with
     * |x·G| <= β/e is finite unless β/α > 9e38 (never: the module keeps β < 2.6α), so the test needs
     * no side. Testing the side again after the division lets gcc's jump threading copy the division
     * into both arms of the select above: two divisions again. */
    o.y = o.r == 0.0f ? p[0] : numerator * o.r;
    return o;
}

static inline float srs_value(float x, const float *p, const float *q, const float *k) {
    return srs_evaluate(x, p, q).y;
}

/* srs._derivatives: ∂/∂x = (G + x·G/β)/D², ∂/∂α = (SRS/α)², ∂/∂β = -x·(x·G)/(β²·D²) */
static inline float srs_partials(float x, const float *p, const float *q, const float *k, float *d) {
    srs_parts o = srs_evaluate(x, p, q);
    float r2 = o.r * o.r;
    float y_over_alpha = o.y * q[0];
    d[0] = y_over_alpha * y_over_alpha;
    d[1] = -(x * o.xg) * q[2] * r2;
    return (o.g + o.xg * q[1]) * r2;
}

ELEMENTWISE_KERNELS(srs, 2, 3, 0)
