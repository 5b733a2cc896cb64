/* The loops of actlab's native CPU kernels for elementwise activations, float32
 * (actlab.kernels.native_elementwise). A family's C file defines, for each op NAME with P
 * parameters and Q per-channel values derived from them:
 *
 *   static inline void  NAME_derive(const float *p, float *q, const float *k);
 *   static inline float NAME_value(float x, const float *p, const float *q, const float *k);
 *   static inline float NAME_partials(float x, const float *p, const float *q, const float *k, float *d);
 *
 * (p: the parameters of x's channel; q: what NAME_derive made of them, computed once per channel
 * and call; k: the op's constants, e.g. fitted coefficients; NAME_partials returns ∂y/∂x and
 * writes ∂y/∂p_j to d[j]), then expands ELEMENTWISE_KERNELS(NAME, P, Q, K), K being how many
 * constants k holds (the engine checks the op's native_constants against it). The math restates the
 * op's fused torch forms, which the tests hold it against. The three need to be branch-free
 * (selects, not ifs), so that gcc vectorises the loops that inline them.
 *
 * Where the P partials are per-element terms times per-channel factors (Zorro's hump: ∂T/∂a =
 * -(τ + b·σ), ∂T/∂b = -a·σ), a family may define instead of NAME_partials
 *
 *   static inline float NAME_shares(float x, const float *p, const float *q, const float *k, float *s);
 *   static inline void  NAME_combine(const float *s, const float *p, const float *q, const float *k, float *d);
 *
 * (NAME_shares returns ∂y/∂x and writes the S per-element terms; NAME_combine, linear in s, makes
 * the P partials of them) and expands ELEMENTWISE_KERNELS_OF_SHARES(NAME, P, S, Q, K): the terms
 * are summed over a block and combined once per block, not once per element ("shared" and "rows";
 * in "cols", where neighbours belong to different channels, each element's terms are combined).
 *
 * Inputs are the canonical views of actlab.kernels.layout, contiguous: "shared" and "rows" are runs
 * of ``inner`` elements, run r belonging to channel r mod channels (shared: one channel); "cols"
 * (``cols`` = 1) are rows of ``inner`` = channels elements, element i of a row belonging to
 * channel i. Parameters and derived values are (P, channels) and (Q, channels) arrays. A part
 * (parallel.h) covers runs [first, first + runs), elements [offset, offset + length) of each.
 * Parameter gradients are summed per part into P·channels doubles: in "shared" and "rows" over
 * blocks of ELEMENTWISE_BLOCK elements in float32 lanes first, in "cols" element by element.
 */
#ifndef ACTLAB_ELEMENTWISE_H
#define ACTLAB_ELEMENTWISE_H

#include <stdint.h>

#include "fastmath.h"
#include "parallel.h"

#define ELEMENTWISE_BLOCK 512

/* Parameter shares are summed in ELEMENTWISE_LANES float lanes of a GCC vector type, one register
 * per parameter, beside the loop that computes them. Before, a block's shares were stored and then
 * summed by loops of their own: PAU's ten parameters took 6.4 of its 10.1 ms backward at 2^22
 * elements, 2.6-3.4 ms with the lanes (C harness, one thread). At most ELEMENTWISE_BLOCK elements
 * are summed in float (32 per lane), each block's total then added in double. */
#define ELEMENTWISE_LANES 16
typedef float elementwise_lanes __attribute__((vector_size(4 * ELEMENTWISE_LANES)));

/* Σ lanes, pairwise (a chain of additions one after the other cost the sums above a quarter of their
 * time). */
static inline float elementwise_lanes_total(const elementwise_lanes *v) {
    float s[ELEMENTWISE_LANES];
    memcpy(s, v, sizeof s);
    for (int w = ELEMENTWISE_LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) s[l] += s[l + w];
    return s[0];
}

/* out[j] = table[j·channels + at], j < count: one channel's parameters or derived values, from a
 * (count, channels) table. */
static inline void elementwise_channel(const float *restrict table, int64_t channels, int64_t at, int count,
                                       float *restrict out) {
    for (int j = 0; j < count; j++) out[j] = table[j * channels + at];
}

#define ELEMENTWISE_KERNELS_OF_SHARES(NAME, P, S, Q, K)                                                               \
    /* Once per call, before the parts (each part reads every channel's values in "cols"). */                      \
    void NAME##_derive_all(const float *restrict params, float *restrict derived, const float *restrict k,           \
                           int64_t channels) {                                                                        \
        for (int64_t c = 0; c < channels; c++) {                                                                      \
            float p[(P) + 1], q[(Q) + 1];                                                                             \
            elementwise_channel(params, channels, c, (P), p);                                                         \
            NAME##_derive(p, q, k);                                                                                   \
            for (int j = 0; j < (Q); j++) derived[j * channels + c] = q[j];                                           \
        }                                                                                                             \
    }                                                                                                                 \
                                                                                                                      \
    static void NAME##_forward(const float *restrict x, float *restrict y, const float *restrict params,              \
                               const float *restrict derived, const float *restrict k, const int64_t *part,           \
                               int64_t channels, int64_t inner, int32_t cols) {                                       \
        for (int64_t r = part[0]; r < part[0] + part[1]; r++) {                                                       \
            const float *restrict xb = x + r * inner + part[2];                                                       \
            float *restrict yb = y + r * inner + part[2];                                                             \
            if (cols) {                                                                                               \
                const float *restrict pc = params + part[2], *restrict qc = derived + part[2];                        \
                for (int64_t i = 0; i < part[3]; i++) {                                                               \
                    float p[(P) + 1], q[(Q) + 1];                                                                     \
                    elementwise_channel(pc, channels, i, (P), p);                                                     \
                    elementwise_channel(qc, channels, i, (Q), q);                                                     \
                    yb[i] = NAME##_value(xb[i], p, q, k);                                                             \
                }                                                                                                     \
            } else {                                                                                                  \
                const int64_t c = r % channels;                                                                       \
                float p[(P) + 1], q[(Q) + 1];                                                                         \
                elementwise_channel(params, channels, c, (P), p);                                                     \
                elementwise_channel(derived, channels, c, (Q), q);                                                    \
                for (int64_t i = 0; i < part[3]; i++) yb[i] = NAME##_value(xb[i], p, q, k);                           \
            }                                                                                                         \
        }                                                                                                             \
    }                                                                                                                 \
                                                                                                                      \
    /* One run's block of m <= ELEMENTWISE_BLOCK elements, the parameters' gradients summed into acc                  \
     * (accumulate: a constant). ELEMENTWISE_LANES elements at a time: gcc vectorises that inner loop into            \
     * one iteration, whose shares go through the stack (L1) into the lanes. */                                       \
    static inline __attribute__((always_inline)) void NAME##_backward_block(                                          \
        const float *restrict xb, const float *restrict gb, float *restrict gxb, const float *p, const float *q,      \
        const float *restrict k, int64_t m, float *restrict acc, const int accumulate) {                              \
        if (!accumulate) {                                                                                            \
            for (int64_t i = 0; i < m; i++) {                                                                         \
                float s[(S) + 1];                                                                                     \
                gxb[i] = gb[i] * NAME##_shares(xb[i], p, q, k, s);                                                    \
            }                                                                                                         \
            return;                                                                                                   \
        }                                                                                                             \
        elementwise_lanes lanes[(S) + 1];                                                                             \
        for (int j = 0; j < (S); j++) lanes[j] = (elementwise_lanes){0};                                              \
        int64_t i0 = 0;                                                                                               \
        for (; i0 + ELEMENTWISE_LANES <= m; i0 += ELEMENTWISE_LANES) {                                                \
            float shares[(S) + 1][ELEMENTWISE_LANES];                                                                 \
            for (int l = 0; l < ELEMENTWISE_LANES; l++) {                                                             \
                float s[(S) + 1];                                                                                     \
                float gi = gb[i0 + l];                                                                                \
                gxb[i0 + l] = gi * NAME##_shares(xb[i0 + l], p, q, k, s);                                             \
                for (int j = 0; j < (S); j++) shares[j][l] = gi * s[j];                                               \
            }                                                                                                         \
            for (int j = 0; j < (S); j++) {                                                                           \
                elementwise_lanes v;                                                                                  \
                memcpy(&v, shares[j], sizeof v);                                                                      \
                lanes[j] += v;                                                                                        \
            }                                                                                                         \
        }                                                                                                             \
        for (int64_t i = i0; i < m; i++) {                                                                            \
            float s[(S) + 1];                                                                                         \
            float gi = gb[i];                                                                                         \
            gxb[i] = gi * NAME##_shares(xb[i], p, q, k, s);                                                           \
            for (int j = 0; j < (S); j++) lanes[j][0] += gi * s[j];                                                   \
        }                                                                                                             \
        float totals[(S) + 1];                                                                                        \
        for (int j = 0; j < (S); j++) totals[j] = elementwise_lanes_total(&lanes[j]);                                 \
        NAME##_combine(totals, p, q, k, acc);                                                                         \
    }                                                                                                                 \
                                                                                                                      \
    /* One row of "cols" (m channels from channel c0), each parameter's share added to its channel's sum              \
     * (accumulate: a constant). */                                                                                   \
    static inline __attribute__((always_inline)) void NAME##_backward_row(                                            \
        const float *restrict xb, const float *restrict gb, float *restrict gxb, const float *restrict params,        \
        const float *restrict derived, const float *restrict k, double *restrict sums, int64_t c0, int64_t m,         \
        int64_t channels, const int accumulate) {                                                                     \
        for (int64_t i = 0; i < m; i++) {                                                                             \
            float p[(P) + 1], q[(Q) + 1], s[(S) + 1], d[(P) + 1];                                                     \
            elementwise_channel(params, channels, c0 + i, (P), p);                                                    \
            elementwise_channel(derived, channels, c0 + i, (Q), q);                                                   \
            float gi = gb[i];                                                                                         \
            gxb[i] = gi * NAME##_shares(xb[i], p, q, k, s);                                                           \
            if (accumulate) {                                                                                         \
                NAME##_combine(s, p, q, k, d);                                                                        \
                for (int j = 0; j < (P); j++) sums[j * channels + c0 + i] += (double)(gi * d[j]);                     \
            }                                                                                                         \
        }                                                                                                             \
    }                                                                                                                 \
                                                                                                                      \
    static void NAME##_backward(const float *restrict x, const float *restrict g, float *restrict gx,                 \
                                const float *restrict params, const float *restrict derived, const float *restrict k, \
                                double *restrict sums, const int64_t *part, int64_t channels, int64_t inner,          \
                                int32_t cols, int32_t need_params) {                                                  \
        for (int64_t r = part[0]; r < part[0] + part[1]; r++) {                                                       \
            const int64_t at = r * inner + part[2];                                                                   \
            const float *restrict xb = x + at, *restrict gb = g + at;                                                 \
            float *restrict gxb = gx + at;                                                                            \
            if (cols && need_params && (P) > 0) {                                                                     \
                NAME##_backward_row(xb, gb, gxb, params, derived, k, sums, part[2], part[3], channels, 1);            \
            } else if (cols) {                                                                                        \
                NAME##_backward_row(xb, gb, gxb, params, derived, k, sums, part[2], part[3], channels, 0);            \
            } else {                                                                                                  \
                const int64_t c = r % channels;                                                                       \
                float p[(P) + 1], q[(Q) + 1], acc[(P) + 1];                                                           \
                elementwise_channel(params, channels, c, (P), p);                                                     \
                elementwise_channel(derived, channels, c, (Q), q);                                                    \
                for (int64_t s = 0; s < part[3]; s += ELEMENTWISE_BLOCK) {                                            \
                    int64_t m = part[3] - s < ELEMENTWISE_BLOCK ? part[3] - s : ELEMENTWISE_BLOCK;                   \
                    if (need_params && (P) > 0) {                                                                     \
                        NAME##_backward_block(xb + s, gb + s, gxb + s, p, q, k, m, acc, 1);                           \
                        for (int j = 0; j < (P); j++) sums[j * channels + c] += (double)acc[j];                       \
                    } else {                                                                                          \
                        NAME##_backward_block(xb + s, gb + s, gxb + s, p, q, k, m, acc, 0);                           \
                    }                                                                                                 \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
    }                                                                                                                 \
                                                                                                                      \
    void NAME##_forward_parts(const int64_t *parts, int64_t count, const float *x, float *y, const float *params,    \
                              const float *derived, const float *k, int64_t channels, int64_t inner, int32_t cols) {  \
        FOR_EACH_PART(parts, count, 4, NAME##_forward(x, y, params, derived, k, p, channels, inner, cols));           \
    }                                                                                                                 \
                                                                                                                      \
    void NAME##_backward_parts(const int64_t *parts, int64_t count, const float *x, const float *g, float *gx,       \
                               const float *params, const float *derived, const float *k, double *sums,               \
                               int64_t channels,                                                                      \
                               int64_t inner, int32_t cols, int32_t need_params) {                                    \
        FOR_EACH_PART(parts, count, 4,                                                                                \
                      NAME##_backward(x, g, gx, params, derived, k, sums + i * (int64_t)(P) * channels, p, channels,  \
                                      inner, cols, need_params));                                                     \
    }                                                                                                                 \
                                                                                                                      \
    int32_t NAME##_parameter_count(void) { return (P); }                                                              \
    int32_t NAME##_derived_count(void) { return (Q); }                                                                \
    int32_t NAME##_constant_count(void) { return (K); }

/* The kernels of an op whose NAME_partials are its shares: S = P, combined as they are. */
#define ELEMENTWISE_KERNELS(NAME, P, Q, K)                                                                            \
    static inline float NAME##_shares(float x, const float *p, const float *q, const float *k, float *s) {           \
        return NAME##_partials(x, p, q, k, s);                                                                       \
    }                                                                                                                \
    static inline void NAME##_combine(const float *s, const float *p, const float *q, const float *k, float *d) {    \
        for (int j = 0; j < (P); j++) d[j] = s[j];                                                                   \
    }                                                                                                                \
    ELEMENTWISE_KERNELS_OF_SHARES(NAME, P, P, Q, K)

#endif
