/* Swish's native CPU kernels (actlab.activations.swish, elementwise.h): x·σ(βx), with
 * ∂/∂x = σ + βx·σ(1-σ) and ∂/∂β = x·(x·σ(1-σ)) (x² formed last, so it never overflows where
 * σ(1-σ) is already 0). */
#include "elementwise.h"

static inline void swish_derive(const float *p, float *q, const float *k) {}

static inline float swish_value(float x, const float *p, const float *q, const float *k) {
    return x * sigmoid(p[0] * x);
}

static inline float swish_partials(float x, const float *p, const float *q, const float *k, float *d) {
    float beta = p[0];
    float s = sigmoid(beta * x);
    float slope = s * (1.0f - s);
    d[0] = x * (x * slope);
    return s + beta * x * slope;
}

ELEMENTWISE_KERNELS(swish, 1, 0, 0)
