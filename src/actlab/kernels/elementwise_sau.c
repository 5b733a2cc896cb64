/* SAU's native CPU kernels (actlab.activations.sau, elementwise.h): x·(1 - (1-α)Φ(-x/σ)) +
 * (1-α)·σ·φ(x/σ), with Φ(-z) = (1 - erf(z/√2))/2 and φ from the erf's own exponential
 * (sau._fast_tail_and_density: erf_and_gaussian, one exponential per element). No saturation
 * guards: at |x| = ∞ erf is ±1 and the density 0, the exact limits, as in the torch form.
 */
#include "elementwise.h"

#define SAU_INV_SQRT2 0.70710678118654752f
#define SAU_INV_SQRT_2PI 0.39894228040143268f

/* Per channel (α, σ): 1/(√2σ), 1 - α and (1 - α)·σ (sau._value, sau._derivatives). */
static inline void sau_derive(const float *p, float *q, const float *k) {
    float c = 1.0f - p[0];
    q[0] = SAU_INV_SQRT2 / p[1];
    q[1] = c;
    q[2] = c * p[1];
}

/* Φ(-x/σ) and φ(x/σ) (sau._fast_tail_and_density) */
static inline float sau_tail(float x, const float *q, float *density) {
    float gaussian;
    float erf_z = erf_and_gaussian(x * q[0], &gaussian);
    *density = SAU_INV_SQRT_2PI * gaussian;
    return 0.5f - 0.5f * erf_z;
}

/* sau._value(sau._fast_tail_and_density) */
static inline float sau_value(float x, const float *p, const float *q, const float *k) {
    float density;
    float tail = sau_tail(x, q, &density);
    return x * (1.0f - q[1] * tail) + q[2] * density;
}

/* sau._derivatives: ∂/∂x = 1 - (1-α)Φ(-x/σ), ∂/∂α = x·Φ(-x/σ) - σ·φ(x/σ), ∂/∂σ = (1-α)·φ(x/σ);
 * the parameters' terms x·Φ(-x/σ) and φ(x/σ) are summed, their factors σ and 1-α applied once per
 * block (elementwise.h, ELEMENTWISE_KERNELS_OF_SHARES). */
static inline float sau_shares(float x, const float *p, const float *q, const float *k, float *s) {
    float density;
    float tail = sau_tail(x, q, &density);
    s[0] = x * tail;
    s[1] = density;
    return 1.0f - q[1] * tail;
}

static inline void sau_combine(const float *s, const float *p, const float *q, const float *k, float *d) {
    d[0] = s[0] - p[1] * s[1];
    d[1] = q[1] * s[1];
}

ELEMENTWISE_KERNELS_OF_SHARES(sau, 2, 2, 3, 0)
