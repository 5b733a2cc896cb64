/* EELU's native CPU kernels (actlab.activations.eelu, elementwise.h): -x·erf(e^{-x}) and its
 * derivative in the fitted form of the float32 compiled graphs, eelu.FITTED (fitted_gate.h) at
 * u = -x: EELU(x) = FITTED.value(-x), EELU'(x) = -FITTED.derivative(-x) (eelu._fast_value,
 * eelu._derivatives). The counts are those of eelu._DEGREES (8, 9, 14, 16), plus one each; other
 * degrees there fail the constant count or make every output NaN (fitted_gate.h). */
#include "fitted_gate.h"

#define EELU_COUNTS 9, 10, 15, 17 /* A, B, P, F */

static inline void eelu_derive(const float *p, float *q, const float *k) { fitted_gate_derive(k, q, EELU_COUNTS); }

static inline float eelu_value(float x, const float *p, const float *q, const float *k) {
    return fitted_gate_value(-x, k, q[0], EELU_COUNTS);
}

static inline float eelu_partials(float x, const float *p, const float *q, const float *k, float *d) {
    return -fitted_gate_derivative(-x, k, q[0], EELU_COUNTS);
}

ELEMENTWISE_KERNELS(eelu, 0, FITTED_GATE_DERIVED, FITTED_GATE_CONSTANTS(EELU_COUNTS))
