/* APA and AGLU's native CPU kernels (actlab.activations.apa, elementwise.h), in log space as the
 * torch forms: with -u = ln λ - κz (κz clamped as apa._exponent clamps it, where that matters),
 * ln APA = -softplus(-u)/λ <= 0, so APA = e^{ln APA} is exp_nonpositive's, and softplus(-u) and
 * σ(-u) come from one e^{-|u|} (actlab._math.softplus_and_sigmoid).
 * AGLU(z) = z·APA(z) reuses every piece.
 *
 * No NaN needs a select of its own: a NaN z (or κz = NaN, e.g. κ = 0 at z = ±inf) makes -u, e,
 * softplus, σ and so the gate and every partial NaN, as in the torch forms; at z = ±inf the partials'
 * products z·0 are NaN as they are in torch.
 */
#include <math.h>

#include "elementwise.h"

/* apa._KZ_LIMIT: beyond it APA is exactly 0 or 1 for any λ < 1e28. */
#define KZ_LIMIT 1e30f

/* Per channel (λ, κ): ln λ, 1/λ, 1/λ² and κ/λ (apa._exponent's log, _apa_partials' inv_lam; libm: once
 * per channel). */
#define APA_DERIVED 4
static inline void apa_derive(const float *p, float *q, const float *k) {
    float inv_lam = 1.0f / p[0];
    q[0] = logf(p[0]);
    q[1] = inv_lam;
    q[2] = inv_lam * inv_lam;
    q[3] = p[1] * inv_lam;
}

/* -u = ln λ - κz for the partials (apa._exponent, negated: exact), with κz clamped below at -1e30
 * only: that keeps softplus(-u) and so -λ·ln(p)·p finite at κz = -inf, where torch's partials are
 * finite too. The clamp above changes no result: κz > 1e30 or +inf gives e^{-|u|} = 0, softplus = 0
 * and σ = 0 either way. A plain select keeps a NaN κz. */
static inline float apa_minus_exponent(float z, float kappa, const float *q) {
    float kz = kappa * z;
    return q[0] - (kz < -KZ_LIMIT ? -KZ_LIMIT : kz);
}

/* APA(z) = exp(-softplus(-u)/λ) with the series softplus (apa._apa_value(softplus_by_series)). The
 * value needs no clamp (a sixth of its time): beyond ±1e30 the clamped and the unclamped -u both give
 * APA exactly 0 or 1, an infinite softplus included (exp_nonpositive(-inf) = 0). */
static inline float apa_gate(float z, float kappa, const float *q) {
    float w = q[0] - kappa * z;
    return exp_nonpositive(-softplus_from(w, exp_minus_abs(w)) * q[1]);
}

/* APA, its x-partial and the terms of its parameter partials (apa._apa_partials): ∂/∂z = p·σ·κ/λ,
 * ∂/∂λ = (softplus(-u)·p - p·σ)/λ², ∂/∂κ = p·σ·z/λ. The terms softplus(-u)·p - p·σ and p·σ·z are
 * summed, 1/λ² and 1/λ applied once per block (elementwise.h, ELEMENTWISE_KERNELS_OF_SHARES). */
typedef struct {
    float p, dp_dz, lam_term, kappa_term;
} apa_parts;

static inline apa_parts apa_parts_of(float z, float lam, float kappa, const float *q) {
    apa_parts o;
    float w = apa_minus_exponent(z, kappa, q);
    float e = exp_minus_abs(w);
    float sp = softplus_from(w, e);
    float s = sigmoid_from(w, e);
    float log_p = -sp * q[1];
    float p = exp_nonpositive(log_p);
    /* softplus(-u)·p as -λ·ln(p)·p: finite where softplus(-u) is huge and p = 0 */
    float sp_p = -lam * log_p * p;
    float ps = p * s;
    o.p = p;
    o.dp_dz = ps * q[3];
    o.lam_term = sp_p - ps;
    o.kappa_term = ps * z;
    return o;
}

static inline void apa_combine(const float *s, const float *p, const float *q, const float *k, float *d) {
    d[0] = s[0] * q[2];
    d[1] = s[1] * q[1];
}

/* APA (λ, κ) */
static inline float apa_value(float x, const float *p, const float *q, const float *k) {
    return apa_gate(x, p[1], q);
}

static inline float apa_shares(float x, const float *p, const float *q, const float *k, float *s) {
    apa_parts o = apa_parts_of(x, p[0], p[1], q);
    s[0] = o.lam_term;
    s[1] = o.kappa_term;
    return o.dp_dz;
}

ELEMENTWISE_KERNELS_OF_SHARES(apa, 2, 2, APA_DERIVED, 0)

/* AGLU (λ, κ): z·APA(z) (apa._aglu_value, apa._aglu_derivatives), its terms z times APA's */
static inline void aglu_derive(const float *p, float *q, const float *k) { apa_derive(p, q, k); }

static inline float aglu_value(float x, const float *p, const float *q, const float *k) {
    return x * apa_gate(x, p[1], q);
}

static inline float aglu_shares(float x, const float *p, const float *q, const float *k, float *s) {
    apa_parts o = apa_parts_of(x, p[0], p[1], q);
    s[0] = x * o.lam_term;
    s[1] = x * o.kappa_term;
    return o.p + x * o.dp_dz;
}

static inline void aglu_combine(const float *s, const float *p, const float *q, const float *k, float *d) {
    apa_combine(s, p, q, k, d);
}

ELEMENTWISE_KERNELS_OF_SHARES(aglu, 2, 2, APA_DERIVED, 0)
