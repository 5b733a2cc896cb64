/* Serf's native CPU kernels (actlab.activations.serf, elementwise.h): x·erf(softplus(x)) and its
 * derivative in the fitted form of the float32 compiled graphs, serf.FITTED (fitted_gate.h), u = x.
 * The counts are those of serf._DEGREES (9, 9, 18, 18), plus one each; other degrees there fail
 * the constant count or make every output NaN (fitted_gate.h). */
#include "fitted_gate.h"

#define SERF_COUNTS 10, 10, 19, 19 /* A, B, P, F */

static inline void serf_derive(const float *p, float *q, const float *k) { fitted_gate_derive(k, q, SERF_COUNTS); }

static inline float serf_value(float x, const float *p, const float *q, const float *k) {
    return fitted_gate_value(x, k, q[0], SERF_COUNTS);
}

static inline float serf_partials(float x, const float *p, const float *q, const float *k, float *d) {
    return fitted_gate_derivative(x, k, q[0], SERF_COUNTS);
}

ELEMENTWISE_KERNELS(serf, 0, FITTED_GATE_DERIVED, FITTED_GATE_CONSTANTS(SERF_COUNTS))
