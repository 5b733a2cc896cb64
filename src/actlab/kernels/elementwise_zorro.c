/* The Zorro family's native CPU kernels (actlab.activations.zorro, elementwise.h). Every member is
 * Symmetric-Zorro Z(u) = clamp(u, 0, 1) + sign(u)·T(d), d = max(|u - 1/2| - 1/2, 0), with the hump
 * T(d) = d·h(d) from one exponential (zorro._fast_hump): with c = e^{-ab} per channel and
 * E = e^{-a·d}, q = 1/(1 + c·E), h = (1 + c)·E·q, σ_b - σ_db = c/(1 + c) - c·E·q, d capped at 1e4/a.
 */
#include <math.h>

#include "elementwise.h"

/* Per channel (a, b): c = e^{-ab}, 1 + c, c/(1 + c) and the cap 1e4/a (libm: once per channel). */
#define HUMP_DERIVED 4
static inline void hump_derive(float a, float b, float *q) {
    float c = expf(-a * b);
    q[0] = c;
    q[1] = 1.0f + c;
    q[2] = c / (1.0f + c);
    q[3] = 1e4f / a;
}

/* Z(u) and its partials (zorro._zorro_parts): z, dz/du, dz/da, dz/db, and for Sloped-Zorro
 * T, T'(d), ∂T/∂a, ∂T/∂b and the uncapped distance. */
typedef struct {
    float z, dz_du, dz_da, dz_db, t, dt_dd, dt_da, dt_db, distance;
} zorro_parts;

/* Plain selects: chains of NaN-preserving selects (u == u ? ...) stop gcc from vectorising the
 * loops. A NaN input still gives a NaN value (clamp_unit keeps it) and NaN parameter partials
 * (propagate_nan); its input partial is 1, as in the torch forms (where(outside, T', 1)). */
static inline float distance_from_unit(float u) {
    float d = __builtin_fabsf(u - 0.5f) - 0.5f;
    return d > 0.0f ? d : 0.0f;
}

static inline float clamp_unit(float u) { return u < 0.0f ? 0.0f : (u > 1.0f ? 1.0f : u); }

static inline float propagate_nan(float u, float v) { return u == u ? v : u; }

static inline zorro_parts hump_parts(float u, float a, float b, const float *q) {
    zorro_parts o;
    float d_full = distance_from_unit(u);
    float d = d_full < q[3] ? d_full : q[3];
    float e = exp_nonpositive(-a * d);
    float qq = 1.0f / (1.0f + q[0] * e);
    float h = q[1] * e * qq;
    float sigma_diff = q[2] - q[0] * e * qq;
    o.t = d * h;
    o.dt_dd = h - a * qq * o.t;
    o.dt_da = -o.t * (d * qq + b * sigma_diff);
    o.dt_db = -a * o.t * sigma_diff;
    float sign = sign_of(u);
    o.z = clamp_unit(u) + sign * o.t;
    o.dz_du = (u < 0.0f) | (u > 1.0f) ? o.dt_dd : 1.0f;
    o.dz_da = propagate_nan(u, sign * o.dt_da);
    o.dz_db = propagate_nan(u, sign * o.dt_db);
    o.distance = d_full;
    return o;
}

/* Z(u) alone: b enters only the parameter partials, which the compiler drops here. */
static inline float hump_value(float u, float a, const float *q) { return hump_parts(u, a, 0.0f, q).z; }

/* Symmetric-Zorro (a, b) */
static inline void zorro_derive(const float *p, float *q, const float *k) { hump_derive(p[0], p[1], q); }

static inline float zorro_value(float x, const float *p, const float *q, const float *k) {
    return hump_value(x, p[0], q);
}

static inline float zorro_partials(float x, const float *p, const float *q, const float *k, float *d) {
    zorro_parts o = hump_parts(x, p[0], p[1], q);
    d[0] = o.dz_da;
    d[1] = o.dz_db;
    return o.dz_du;
}

ELEMENTWISE_KERNELS(zorro, 2, HUMP_DERIVED, 0)

/* Asymmetric-Zorro (a_neg, b_neg, a_pos, b_pos): the negative side's parameters below 0 */
static inline void zorro_asymmetric_derive(const float *p, float *q, const float *k) {
    hump_derive(p[0], p[1], q);
    hump_derive(p[2], p[3], q + HUMP_DERIVED);
}

static inline float zorro_asymmetric_value(float x, const float *p, const float *q, const float *k) {
    float negative = x < 0.0f;
    float qs[HUMP_DERIVED];
    for (int j = 0; j < HUMP_DERIVED; j++) qs[j] = negative ? q[j] : q[HUMP_DERIVED + j];
    return hump_value(x, negative ? p[0] : p[2], qs);
}

static inline float zorro_asymmetric_partials(float x, const float *p, const float *q, const float *k, float *d) {
    int negative = x < 0.0f;
    float qs[HUMP_DERIVED];
    for (int j = 0; j < HUMP_DERIVED; j++) qs[j] = negative ? q[j] : q[HUMP_DERIVED + j];
    zorro_parts o = hump_parts(x, negative ? p[0] : p[2], negative ? p[1] : p[3], qs);
    d[0] = negative ? o.dz_da : 0.0f;
    d[1] = negative ? o.dz_db : 0.0f;
    d[2] = negative ? 0.0f : o.dz_da;
    d[3] = negative ? 0.0f : o.dz_db;
    return o.dz_du;
}

ELEMENTWISE_KERNELS(zorro_asymmetric, 4, 2 * HUMP_DERIVED, 0)

/* Sigmoid-Zorro (slope, a, b): Z(slope·x + 1/2) */
static inline void zorro_sigmoid_derive(const float *p, float *q, const float *k) { hump_derive(p[1], p[2], q); }

static inline float zorro_sigmoid_value(float x, const float *p, const float *q, const float *k) {
    return hump_value(p[0] * x + 0.5f, p[1], q);
}

static inline float zorro_sigmoid_partials(float x, const float *p, const float *q, const float *k, float *d) {
    zorro_parts o = hump_parts(p[0] * x + 0.5f, p[1], p[2], q);
    d[0] = x * o.dz_du;
    d[1] = o.dz_da;
    d[2] = o.dz_db;
    return p[0] * o.dz_du;
}

ELEMENTWISE_KERNELS(zorro_sigmoid, 3, HUMP_DERIVED, 0)

/* Tanh-Zorro (slope, a, b): 2·Z((slope·x + 1)/2) - 1 */
static inline void zorro_tanh_derive(const float *p, float *q, const float *k) { hump_derive(p[1], p[2], q); }

static inline float zorro_tanh_value(float x, const float *p, const float *q, const float *k) {
    return 2.0f * hump_value((p[0] * x + 1.0f) * 0.5f, p[1], q) - 1.0f;
}

static inline float zorro_tanh_partials(float x, const float *p, const float *q, const float *k, float *d) {
    zorro_parts o = hump_parts((p[0] * x + 1.0f) * 0.5f, p[1], p[2], q);
    d[0] = x * o.dz_du;
    d[1] = 2.0f * o.dz_da;
    d[2] = 2.0f * o.dz_db;
    return p[0] * o.dz_du;
}

ELEMENTWISE_KERNELS(zorro_tanh, 3, HUMP_DERIVED, 0)

/* Sloped-Zorro (a, b, slope): Z(x) + slope·[x > 1]·(d - T(d)) */
static inline void zorro_sloped_derive(const float *p, float *q, const float *k) { hump_derive(p[0], p[1], q); }

static inline float zorro_sloped_value(float x, const float *p, const float *q, const float *k) {
    zorro_parts o = hump_parts(x, p[0], p[1], q);
    float growth = x > 1.0f ? o.distance - o.t : 0.0f;
    return o.z + p[2] * growth;
}

static inline float zorro_sloped_partials(float x, const float *p, const float *q, const float *k, float *d) {
    zorro_parts o = hump_parts(x, p[0], p[1], q);
    int above = x > 1.0f;
    float slope = p[2];
    d[0] = o.dz_da - slope * (above ? o.dt_da : 0.0f);
    d[1] = o.dz_db - slope * (above ? o.dt_db : 0.0f);
    d[2] = above ? o.distance - o.t : 0.0f;
    return o.dz_du + slope * (above ? 1.0f - o.dt_dd : 0.0f);
}

ELEMENTWISE_KERNELS(zorro_sloped, 3, HUMP_DERIVED, 0)
