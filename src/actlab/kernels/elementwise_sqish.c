/* Sqish's native CPU kernels (actlab.activations.sqish, elementwise.h): αx + (1-α)·x·s with the gate
 * s = (1 + e^w)^(-1/2), w = ln β - 2γ(1-α)x, taken with σ(w) from one exponential of -|w|/2 <= 0
 * and one reciprocal square root (sqish._gate_and_sigmoid), so that neither overflows.
 */
#include <math.h>

#include "elementwise.h"

/* Per channel (α, β, γ), c = 1 - α: (ln β)/2 (libm: once per channel), cγ, c, c²γ, -c·(1/2β) and c²,
 * the factors of sqish._gate_argument (halved, see sqish_gate) and sqish._derivatives, grouped as
 * torch groups them (left to right) except ∂/∂β's two per-channel factors, multiplied here once. */
static inline void sqish_derive(const float *p, float *q, const float *k) {
    float c = 1.0f - p[0];
    q[0] = 0.5f * logf(p[1]);
    q[1] = c * p[2];
    q[2] = c;
    q[3] = c * c * p[2];
    q[4] = -c * (0.5f / p[1]);
    q[5] = c * c;
}

/* s and σ(w) at x (sqish._gate_argument, sqish._gate_and_sigmoid), from w/2 = (ln β)/2 - γ(1-α)x,
 * which is w·0.5 to the bit (halving commutes with rounding). sqish._gate_argument's clamp to
 * ±1e30 is left out: it changes w only where |w|/2 > 87, where e^{-|w|/2} is 0 with or without it
 * (and the sign of w, hence the side, is kept), and it keeps a NaN, so it changes no result here.
 * With it, and exp_minus_abs' select on the sign, gcc merged the selects into a dozen mask
 * operations per vector: forward 2.1 against 1.2 ms at 2^22 floats. -|w/2| is the sign bit set. */
static inline float sqish_gate(float x, const float *q, float *sigmoid_w) {
    float half = q[0] - q[1] * x;
    int positive = half >= 0.0f;
    float h = exp_nonpositive(-__builtin_fabsf(half));
    float e = h * h;
    float r = 1.0f / __builtin_sqrtf(1.0f + e);
    *sigmoid_w = (positive ? 1.0f : e) * (r * r);
    return (positive ? h : 1.0f) * r;
}

/* sqish._value */
static inline float sqish_value(float x, const float *p, const float *q, const float *k) {
    float sigmoid_w;
    float s = sqish_gate(x, q, &sigmoid_w);
    return p[0] * x + q[2] * x * s;
}

/* sqish._derivatives (x·s·σ(w) is bounded, so the products are formed after it) */
static inline float sqish_partials(float x, const float *p, const float *q, const float *k, float *d) {
    float sigmoid_w;
    float s = sqish_gate(x, q, &sigmoid_w);
    float xs_sig = x * s * sigmoid_w;
    d[0] = x * (1.0f - s) - q[1] * x * xs_sig;
    d[1] = q[4] * xs_sig;
    d[2] = q[5] * x * xs_sig;
    return p[0] + q[2] * s + q[3] * xs_sig;
}

ELEMENTWISE_KERNELS(sqish, 3, 6, 0)
