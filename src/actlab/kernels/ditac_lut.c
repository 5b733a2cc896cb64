/* DiTAC's LUT kernels for the CPU, float32. Linear: GELU(x) + E(x), E interpolated from a table;
 * nearest (the released code's scheme): below.
 *
 * Built by actlab.kernels.native with the system's C compiler at first use (-O3, -march=native,
 * -mtune=generic, -fno-math-errno, -fno-trapping-math: the last lets the compiler evaluate both
 * sides of a select, which vectorises the loops), and called through ctypes. The math is that of
 * actlab.activations.ditac._linear_reference, the truth these kernels are tested against:
 *
 *   s = clamp((x - a)·(size - 1)/(b - a) + 1, 0, size)  (NaN -> 0), k = floor(s), w = s - k
 *   y = x·Φ(x) + values[k] + w·steps[k], steps[k] = values[k + 1] - values[k]
 *   dy/dx = Φ(x) + x·φ(x) + steps[k]·(size - 1)/(b - a)  (the last term only where s is not clamped)
 *   d/dvalues[k] += g, d/dsteps[k] += g·w
 *
 * The inputs arrive in the canonical "rows" shape (outer, channels, inner), contiguous, as runs of
 * ``inner`` elements: run r belongs to channel r mod channels, which reads its tables at
 * channel·stride ("shared" is one channel). A part covers runs [first, first + runs), or (one run
 * split between threads) a range of its elements; the ``*_parts`` entry points at the end run a
 * call's parts (parallel.h). Table gradients are summed in double precision into per-part tables,
 * each channel's stride + EDGE_SLOTS long (below); the linear LUT's as interleaved (values, steps)
 * pairs. Arguments: the per-element arrays (x, then grad, then the output), the tables, the table
 * sums, the run layout, then the constants.
 */
#include <stdint.h>
#include <string.h>

#include "fastmath.h"
#include "parallel.h"

#define SQRT1_2 0.70710678118654752f
#define INV_SQRT_2PI 0.3989422804014327f

/* p[0] and p[1] in one (unaligned) 8-byte load: where the loads are gathers, gcc emulates one
 * gather instead of two (the linear forward 2.5 against 3.1 ms at 2^22). */
static inline void load_pair(const float *p, float *first, float *second) {
    uint64_t pair;
    memcpy(&pair, p, sizeof pair);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint32_t low = (uint32_t)(pair >> 32), high = (uint32_t)pair;
#else
    uint32_t low = (uint32_t)pair, high = (uint32_t)(pair >> 32);
#endif
    memcpy(first, &low, sizeof *first);
    memcpy(second, &high, sizeof *second);
}

/* A grid coordinate clamped to [0, top]; NaN fails the first test and lands on 0. */
static inline float clamp_to_grid(float s, float top) {
    s = s > 0.0f ? s : 0.0f;
    return s < top ? s : top;
}

static void ditac_linear_forward(const float *restrict x, float *restrict out, const float *restrict values, int64_t first,
                                 int64_t runs, int64_t channels, int64_t inner, int64_t stride, float scale, float shift,
                                 float top) {
    for (int64_t r = first; r < first + runs; r++) {
        const float *restrict vc = values + (r % channels) * stride;
        const float *restrict xb = x + r * inner;
        float *restrict ob = out + r * inner;
#pragma GCC ivdep
        for (int64_t i = 0; i < inner; i++) {
            float xi = xb[i];
            float s = clamp_to_grid(xi * scale + shift, top);
            int32_t k = (int32_t)s;
            float w = s - (float)k;
            float gaussian;
            float cdf = 0.5f + 0.5f * erf_and_gaussian(xi * SQRT1_2, &gaussian);
            /* values[k + 1] - values[k] is the float32 subtraction that gives the steps table */
            float here, next;
            load_pair(vc + k, &here, &next);
            ob[i] = xi * cdf + here + w * (next - here);
        }
    }
}

/* The backward passes work in blocks: a vectorised loop (a function of its own: inlined next to
 * the scatter-add, gcc 12 leaves it scalar) writes each element's table slot and its share of the
 * table gradient to the stack (L1), and a scalar loop adds the shares into the tables. That loop
 * leaves the memory bus idle, so it prefetches the next block's x, grad and grad_x as it goes, one
 * cache line of each per LINE elements (backward 1.2x faster at 2^22). */
#define BLOCK 1024
#define LANES 16
#define LINE 16

static inline void prefetch_line(const float *x, const float *grad, float *grad_x, int64_t at) {
    __builtin_prefetch(x + at, 0, 3);
    __builtin_prefetch(grad + at, 0, 3);
    __builtin_prefetch(grad_x + at, 1, 3);
}

/* The sums of a channel's table gradient have EDGE_SLOTS slots after its stride: 16 lanes that take
 * the shares of the elements below a (and NaN), 16 for those above b, lane i mod 16. Without them
 * every element off [a, b] would add to slot 0 or slot top: a third of all elements for inputs like
 * randn, each addition waiting on the last one's store (the backward 1.2x slower). The linear
 * backward folds the lanes into slots 0 and top at the end of each run; the nearest one's shares
 * off [a, b] are zero and stay there. */
#define EDGE_SLOTS (2 * LANES)

int32_t ditac_edge_slots(void) { return EDGE_SLOTS; }

static inline int32_t edge_slot(float s0, int32_t below, int64_t i) {
    return (s0 > 0.0f ? below + LANES : below) + ((int32_t)i & (LANES - 1));
}

/* A pair of double sums added with one vector instruction: the linear LUT's (values, steps). */
typedef double sum_pair __attribute__((vector_size(16), aligned(8)));

__attribute__((noinline)) static void linear_backward_block(const float *restrict xb, const float *restrict gb,
                                                            float *restrict gxb, const float *restrict sc,
                                                            int32_t *restrict index, float *restrict weighted,
                                                            int64_t m, int32_t below, float scale, float shift,
                                                            float top) {
#pragma GCC ivdep
    for (int64_t i = 0; i < m; i++) {
        float xi = xb[i], gi = gb[i];
        float s0 = xi * scale + shift;
        float s = clamp_to_grid(s0, top);
        int32_t k = (int32_t)s;
        float gaussian;
        float cdf = 0.5f + 0.5f * erf_and_gaussian(xi * SQRT1_2, &gaussian);
        /* unconditional load and a bitwise & (no short circuit): no branch in the loop */
        float inside = ((s0 > 0.0f) & (s0 < top)) ? scale : 0.0f;
        gxb[i] = gi * (cdf + xi * (INV_SQRT_2PI * gaussian) + inside * sc[k]);
        index[i] = ((s0 > 0.0f) & (s0 < top)) ? k : edge_slot(s0, below, i);
        weighted[i] = gi * (s - (float)k);
    }
}

static void ditac_linear_backward(const float *restrict x, const float *restrict grad, float *restrict grad_x,
                                  const float *restrict steps, double *restrict grad_tables, int64_t first, int64_t runs,
                                  int64_t channels, int64_t inner, int64_t stride, float scale, float shift, float top,
                                  int32_t need_table) {
    int32_t index[BLOCK];
    float weighted[BLOCK];
    const int32_t below = (int32_t)stride, above = below + LANES;
    for (int64_t r = first; r < first + runs; r++) {
        const int64_t c = r % channels;
        sum_pair *restrict sums = (sum_pair *)grad_tables + c * (stride + EDGE_SLOTS);
        const int64_t end = (r + 1) * inner;
        for (int64_t start = r * inner; start < end; start += BLOCK) {
            int64_t m = end - start < BLOCK ? end - start : BLOCK;
            const float *restrict gb = grad + start;
            linear_backward_block(x + start, gb, grad_x + start, steps + c * stride, index, weighted, m, below,
                                  scale, shift, top);
            if (need_table) {
                int64_t i = 0;
                for (; i + LINE <= m && start + BLOCK + i < end; i += LINE) {
                    prefetch_line(x, grad, grad_x, start + BLOCK + i);
                    for (int64_t j = i; j < i + LINE; j++) sums[index[j]] += (sum_pair){gb[j], weighted[j]};
                }
                for (; i < m; i++) sums[index[i]] += (sum_pair){gb[i], weighted[i]};
            }
        }
        if (need_table) { /* zeroed: the channel's next run adds into the lanes again */
            for (int32_t l = 0; l < LANES; l++) {
                sums[0] += sums[below + l];
                sums[(int32_t)top] += sums[above + l];
                sums[below + l] = sums[above + l] = (sum_pair){0.0, 0.0};
            }
        }
    }
}

/* The nearest-grid LUT of the released code (actlab.activations.ditac._nearest_reference, with Φ
 * from erf as in the compiled path): r = clamp((x - a)·(size - 1)/(b - a), 0, size - 1) rounded
 * half to even, x̃ = a + (b - a)·(r/(size - 1) + D[r]) on [a, b] and x elsewhere, y = x̃·Φ(x);
 * backward straight-through: dx̃/dx = T'(u_r) = slope[r] on [a, b] (1 elsewhere), and
 * d/dD[r] += g·Φ(x)·(b - a) on [a, b]. Here ``top`` is size - 1 and the tables are not padded;
 * the backward reads D and the slope as interleaved (D[r], slope[r]) pairs. */
static inline int32_t nearest_point(float xi, float scale, float shift, float top, float *r) {
    float s = clamp_to_grid(xi * scale + shift, top);
    *r = __builtin_rintf(s); /* the current rounding mode: to nearest, ties to even (torch.round) */
    return (int32_t)*r;
}

static void ditac_nearest_forward(const float *restrict x, float *restrict out, const float *restrict table,
                                  int64_t first, int64_t runs, int64_t channels, int64_t inner, int64_t stride,
                                  float scale, float shift, float top, float lo, float hi) {
    for (int64_t r = first; r < first + runs; r++) {
        const float *restrict tc = table + (r % channels) * stride;
        const float *restrict xb = x + r * inner;
        float *restrict ob = out + r * inner;
#pragma GCC ivdep
        for (int64_t i = 0; i < inner; i++) {
            float xi = xb[i], point;
            int32_t j = nearest_point(xi, scale, shift, top, &point);
            float image = lo + (hi - lo) * (point / top + tc[j]);
            float x_tilde = ((xi >= lo) & (xi <= hi)) ? image : xi;
            float gaussian;
            ob[i] = x_tilde * (0.5f + 0.5f * erf_and_gaussian(xi * SQRT1_2, &gaussian));
        }
    }
}

__attribute__((noinline)) static void nearest_backward_block(const float *restrict xb, const float *restrict gb,
                                                             float *restrict gxb, const float *restrict pairs,
                                                             int32_t *restrict index,
                                                             float *restrict weighted, int64_t m, int32_t below,
                                                             float scale, float shift, float top, float lo, float hi) {
#pragma GCC ivdep
    for (int64_t i = 0; i < m; i++) {
        float xi = xb[i], gi = gb[i], point;
        int32_t j = nearest_point(xi, scale, shift, top, &point);
        /* Blends with in = 1 on [a, b], 0 elsewhere, instead of selects: gcc 12 would load the
         * table entries only under the select's mask, a masked gather it cannot emulate, and leave
         * the loop scalar. Exact: the table values are finite, so 0·image = 0, and 0·x = 0 for the
         * finite x on [a, b]; x = ±inf or NaN is outside. */
        float in = ((xi >= lo) & (xi <= hi)) ? 1.0f : 0.0f;
        float displacement, slope;
        load_pair(pairs + 2 * j, &displacement, &slope);
        float image = lo + (hi - lo) * (point / top + displacement);
        float x_tilde = in * image + (1.0f - in) * xi;
        float d_tilde = in * slope + (1.0f - in);
        float gaussian;
        float cdf = 0.5f + 0.5f * erf_and_gaussian(xi * SQRT1_2, &gaussian);
        gxb[i] = gi * (d_tilde * cdf + x_tilde * (INV_SQRT_2PI * gaussian));
        index[i] = ((xi >= lo) & (xi <= hi)) ? j : edge_slot(xi * scale + shift, below, i);
        weighted[i] = ((xi >= lo) & (xi <= hi)) ? gi * cdf * (hi - lo) : 0.0f;
    }
}

static void ditac_nearest_backward(const float *restrict x, const float *restrict grad, float *restrict grad_x,
                                   const float *restrict pairs, double *restrict grad_table,
                                   int64_t first, int64_t runs, int64_t channels, int64_t inner, int64_t stride,
                                   float scale, float shift, float top, float lo, float hi, int32_t need_table) {
    int32_t index[BLOCK];
    float weighted[BLOCK];
    for (int64_t r = first; r < first + runs; r++) {
        const int64_t c = r % channels;
        double *restrict gt = grad_table + c * (stride + EDGE_SLOTS);
        const int64_t end = (r + 1) * inner;
        for (int64_t start = r * inner; start < end; start += BLOCK) {
            int64_t m = end - start < BLOCK ? end - start : BLOCK;
            nearest_backward_block(x + start, grad + start, grad_x + start, pairs + 2 * c * stride, index, weighted, m,
                                   (int32_t)stride, scale, shift, top, lo, hi);
            if (need_table) {
                int64_t i = 0;
                for (; i + LINE <= m && start + BLOCK + i < end; i += LINE) {
                    prefetch_line(x, grad, grad_x, start + BLOCK + i);
                    for (int64_t j = i; j < i + LINE; j++) gt[index[j]] += (double)weighted[j];
                }
                for (; i < m; i++) gt[index[i]] += (double)weighted[i];
            }
        }
    }
}

/* The parallel entry points (parallel.h): the parts, then the arguments of the kernel without its
 * run layout, the per-part table sums as one array of parts × sums_per_part. */
void ditac_linear_forward_parts(const int64_t *parts, int64_t count, const float *x, float *out, const float *values,
                                int64_t channels, int64_t stride, float scale, float shift, float top) {
    FOR_EACH_PART(parts, count, 4,
                  ditac_linear_forward(x + p[2], out + p[2], values, p[0], p[1], channels, p[3], stride, scale, shift,
                                       top));
}

void ditac_linear_backward_parts(const int64_t *parts, int64_t count, const float *x, const float *grad,
                                 float *grad_x, const float *steps, double *grad_tables, int64_t sums_per_part,
                                 int64_t channels, int64_t stride, float scale, float shift, float top,
                                 int32_t need_table) {
    FOR_EACH_PART(parts, count, 4,
                  ditac_linear_backward(x + p[2], grad + p[2], grad_x + p[2], steps, grad_tables + i * sums_per_part,
                                        p[0], p[1], channels, p[3], stride, scale, shift, top, need_table));
}

void ditac_nearest_forward_parts(const int64_t *parts, int64_t count, const float *x, float *out, const float *table,
                                 int64_t channels, int64_t stride, float scale, float shift, float top, float lo,
                                 float hi) {
    FOR_EACH_PART(parts, count, 4,
                  ditac_nearest_forward(x + p[2], out + p[2], table, p[0], p[1], channels, p[3], stride, scale, shift,
                                        top, lo, hi));
}

void ditac_nearest_backward_parts(const int64_t *parts, int64_t count, const float *x, const float *grad,
                                  float *grad_x, const float *pairs, double *grad_table, int64_t sums_per_part,
                                  int64_t channels, int64_t stride, float scale, float shift, float top, float lo,
                                  float hi, int32_t need_table) {
    FOR_EACH_PART(parts, count, 4,
                  ditac_nearest_backward(x + p[2], grad + p[2], grad_x + p[2], pairs, grad_table + i * sums_per_part,
                                         p[0], p[1], channels, p[3], stride, scale, shift, top, lo, hi, need_table));
}
