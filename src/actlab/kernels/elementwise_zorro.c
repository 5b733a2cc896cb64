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

/* Z(u) and the pieces of its derivatives (zorro._zorro_parts): z, dz/du, and for the parameter
 * partials the two terms dT/da = -(t_dq + b·t_sd) and dT/db = -a·t_sd are made of, t_dq = T·d·q and
 * t_sd = T·(σ_b - σ_db); for Sloped-Zorro T, T'(d) and the uncapped distance. The members sum
 * sign(u)·t_dq and sign(u)·t_sd (their shares) and multiply by a and b once per block
 * (elementwise.h, ELEMENTWISE_KERNELS_OF_SHARES): the backward of Asymmetric Zorro, with four
 * parameters, took about a tenth less than with the partials formed per element. */
typedef struct {
    float z, dz_du, t, dt_dd, t_dq, t_sd, distance;
} zorro_parts;

/* Plain selects: chains of NaN-preserving selects (u == u ? ...) stop gcc from vectorising the
 * loops. A NaN input still gives a NaN value (clamp_unit keeps it) and NaN parameter partials
 * (hump_shares); its input partial is 1, as in the torch forms (where(outside, T', 1)). */
static inline float distance_from_unit(float u) {
    float d = __builtin_fabsf(u - 0.5f) - 0.5f;
    return d > 0.0f ? d : 0.0f;
}

static inline float clamp_unit(float u) { return u < 0.0f ? 0.0f : (u > 1.0f ? 1.0f : u); }

static inline float propagate_nan(float u, float v) { return u == u ? v : u; }

static inline zorro_parts hump_parts(float u, float a, const float *q) {
    zorro_parts o;
    float d_full = distance_from_unit(u);
    float d = d_full < q[3] ? d_full : q[3];
    float e = exp_nonpositive(-a * d);
    float qq = 1.0f / (1.0f + q[0] * e);
    float h = q[1] * e * qq;
    float sigma_diff = q[2] - q[0] * e * qq;
    o.t = d * h;
    o.dt_dd = h - a * qq * o.t;
    o.t_dq = o.t * (d * qq);
    o.t_sd = o.t * sigma_diff;
    o.z = clamp_unit(u) + sign_of(u) * o.t;
    o.dz_du = (u < 0.0f) | (u > 1.0f) ? o.dt_dd : 1.0f;
    o.distance = d_full;
    return o;
}

/* The hump's two shares weighted by w (sign(u) for Z itself), NaN where u is. */
static inline void hump_shares(const zorro_parts *o, float u, float w, float *s) {
    s[0] = propagate_nan(u, w * o->t_dq);
    s[1] = propagate_nan(u, w * o->t_sd);
}

/* (∂/∂a, ∂/∂b) of a hump with parameters (a, b) from its summed shares, times factor. */
static inline void hump_combine(const float *s, float a, float b, float factor, float *d) {
    d[0] = -factor * (s[0] + b * s[1]);
    d[1] = -factor * a * s[1];
}

static inline float hump_value(float u, float a, const float *q) { return hump_parts(u, a, q).z; }

/* Symmetric-Zorro (a, b) */
static inline void zorro_derive(const float *p, float *q, const float *k) { hump_derive(p[0], p[1], q); }

static inline float zorro_value(float x, const float *p, const float *q, const float *k) {
    return hump_value(x, p[0], q);
}

static inline float zorro_shares(float x, const float *p, const float *q, const float *k, float *s) {
    zorro_parts o = hump_parts(x, p[0], q);
    hump_shares(&o, x, sign_of(x), s);
    return o.dz_du;
}

static inline void zorro_combine(const float *s, const float *p, const float *q, const float *k, float *d) {
    hump_combine(s, p[0], p[1], 1.0f, d);
}

ELEMENTWISE_KERNELS_OF_SHARES(zorro, 2, 2, HUMP_DERIVED, 0)

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

static inline float zorro_asymmetric_shares(float x, const float *p, const float *q, const float *k, float *s) {
    int negative = x < 0.0f;
    float qs[HUMP_DERIVED], side[2];
    for (int j = 0; j < HUMP_DERIVED; j++) qs[j] = negative ? q[j] : q[HUMP_DERIVED + j];
    zorro_parts o = hump_parts(x, negative ? p[0] : p[2], qs);
    hump_shares(&o, x, sign_of(x), side);
    s[0] = negative ? side[0] : 0.0f;
    s[1] = negative ? side[1] : 0.0f;
    s[2] = negative ? 0.0f : side[0];
    s[3] = negative ? 0.0f : side[1];
    return o.dz_du;
}

static inline void zorro_asymmetric_combine(const float *s, const float *p, const float *q, const float *k,
                                            float *d) {
    hump_combine(s, p[0], p[1], 1.0f, d);
    hump_combine(s + 2, p[2], p[3], 1.0f, d + 2);
}

ELEMENTWISE_KERNELS_OF_SHARES(zorro_asymmetric, 4, 4, 2 * HUMP_DERIVED, 0)

/* Sigmoid-Zorro (slope, a, b): Z(slope·x + 1/2) */
static inline void zorro_sigmoid_derive(const float *p, float *q, const float *k) { hump_derive(p[1], p[2], q); }

static inline float zorro_sigmoid_value(float x, const float *p, const float *q, const float *k) {
    return hump_value(p[0] * x + 0.5f, p[1], q);
}

static inline float zorro_sigmoid_shares(float x, const float *p, const float *q, const float *k, float *s) {
    float u = p[0] * x + 0.5f;
    zorro_parts o = hump_parts(u, p[1], q);
    s[0] = x * o.dz_du;
    hump_shares(&o, u, sign_of(u), s + 1);
    return p[0] * o.dz_du;
}

static inline void zorro_sigmoid_combine(const float *s, const float *p, const float *q, const float *k, float *d) {
    d[0] = s[0];
    hump_combine(s + 1, p[1], p[2], 1.0f, d + 1);
}

ELEMENTWISE_KERNELS_OF_SHARES(zorro_sigmoid, 3, 3, HUMP_DERIVED, 0)

/* Tanh-Zorro (slope, a, b): 2·Z((slope·x + 1)/2) - 1 */
static inline void zorro_tanh_derive(const float *p, float *q, const float *k) { hump_derive(p[1], p[2], q); }

static inline float zorro_tanh_value(float x, const float *p, const float *q, const float *k) {
    return 2.0f * hump_value((p[0] * x + 1.0f) * 0.5f, p[1], q) - 1.0f;
}

static inline float zorro_tanh_shares(float x, const float *p, const float *q, const float *k, float *s) {
    float u = (p[0] * x + 1.0f) * 0.5f;
    zorro_parts o = hump_parts(u, p[1], q);
    s[0] = x * o.dz_du;
    hump_shares(&o, u, sign_of(u), s + 1);
    return p[0] * o.dz_du;
}

static inline void zorro_tanh_combine(const float *s, const float *p, const float *q, const float *k, float *d) {
    d[0] = s[0];
    hump_combine(s + 1, p[1], p[2], 2.0f, d + 1);
}

ELEMENTWISE_KERNELS_OF_SHARES(zorro_tanh, 3, 3, HUMP_DERIVED, 0)

/* Sloped-Zorro (a, b, slope): Z(x) + slope·[x > 1]·(d - T(d)); the hump's terms enter with the
 * weight sign(x) - slope·[x > 1] */
static inline void zorro_sloped_derive(const float *p, float *q, const float *k) { hump_derive(p[0], p[1], q); }

static inline float zorro_sloped_value(float x, const float *p, const float *q, const float *k) {
    zorro_parts o = hump_parts(x, p[0], q);
    float growth = x > 1.0f ? o.distance - o.t : 0.0f;
    return o.z + p[2] * growth;
}

static inline float zorro_sloped_shares(float x, const float *p, const float *q, const float *k, float *s) {
    zorro_parts o = hump_parts(x, p[0], q);
    int above = x > 1.0f;
    float slope = p[2];
    hump_shares(&o, x, sign_of(x) - (above ? slope : 0.0f), s);
    s[2] = above ? o.distance - o.t : 0.0f;
    return o.dz_du + slope * (above ? 1.0f - o.dt_dd : 0.0f);
}

static inline void zorro_sloped_combine(const float *s, const float *p, const float *q, const float *k, float *d) {
    hump_combine(s, p[0], p[1], 1.0f, d);
    d[2] = s[2];
}

ELEMENTWISE_KERNELS_OF_SHARES(zorro_sloped, 3, 3, HUMP_DERIVED, 0)
