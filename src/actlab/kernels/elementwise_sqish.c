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

/* sqish._derivatives (x·s·σ(w) is bounded, so the products are formed after it): ∂/∂α = x(1 - s) -
 * cγ·x·xsσ, ∂/∂β = -c/(2β)·xsσ, ∂/∂γ = c²·x·xsσ, summed as the terms x(1 - s), x·xsσ and xsσ and
 * multiplied by the per-channel factors once per block (elementwise.h, ELEMENTWISE_KERNELS_OF_SHARES). */
static inline float sqish_shares(float x, const float *p, const float *q, const float *k, float *s) {
    float sigmoid_w;
    float gate = sqish_gate(x, q, &sigmoid_w);
    float xs_sig = x * gate * sigmoid_w;
    s[0] = x * (1.0f - gate);
    s[1] = x * xs_sig;
    s[2] = xs_sig;
    return p[0] + q[2] * gate + q[3] * xs_sig;
}

static inline void sqish_combine(const float *s, const float *p, const float *q, const float *k, float *d) {
    d[0] = s[0] - q[1] * s[1];
    d[1] = q[4] * s[2];
    d[2] = q[5] * s[1];
}

ELEMENTWISE_KERNELS_OF_SHARES(sqish, 3, 3, 6, 0)
