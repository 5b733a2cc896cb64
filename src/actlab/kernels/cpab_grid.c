/* DiTAC's grid tables on the CPU, float64: the CPAB transformation T of the grid points of [0, 1]
 * (actlab.cpab.integrate with derivative= and jacobian=, as actlab.activations.ditac._on_grid calls
 * it), and the contraction of a gradient with its Jacobian (actlab.cpab.JacobianTerms.contract).
 *
 * The torch code is the truth these kernels are tested against; this file follows it operation by
 * operation (the same prefix sums, comparisons, series and selects, in the same order), so that the
 * two agree to rounding. What it saves is the torch code's few hundred small operations per call
 * (1.2-1.4 ms for one θ row with the Jacobian, 16 ms for 64): here a row of 2,048 points takes
 * about 0.1 ms. Built and called like ditac_lut.c (actlab.kernels.native).
 *
 * Layouts (row-major, float64 unless said): theta (rows, P), vertex_map (P, P) with P = cells - 1,
 * grid (size); outputs displacement (rows, size), slope (rows, size) or NULL, and, unless weights is
 * NULL, the JacobianTerms: weights (rows, size, 6), first and last (rows, size) int32, table
 * (rows, 4·cells + 2, P). A call runs its parts of rows (parallel.h) on OpenMP threads.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "parallel.h"

#define MAX_CELLS 256 /* the per-row tables live on the stack; actlab.cpab allows any cells >= 2 */

int32_t cpab_max_cells(void) { return MAX_CELLS; }

static double series(double z, const double *c, int n) {
    double out = c[n - 1];
    for (int i = n - 2; i >= 0; i--) out = out * z + c[i];
    return out;
}

static const double EXPM1_RATIO[] = {1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120};
static const double LOG1P_RATIO[] = {1.0, -1.0 / 2, 1.0 / 3, -1.0 / 4, 1.0 / 5};
static const double EXPM1_RATIO_PRIME[] = {1.0 / 2, 2.0 / 6, 3.0 / 24, 4.0 / 120, 5.0 / 720, 6.0 / 5040};
static const double LOG1P_RATIO_PRIME[] = {-1.0 / 2, 2.0 / 3, -3.0 / 4, 4.0 / 5, -5.0 / 6, 6.0 / 7, -7.0 / 8, 8.0 / 9};

/* (e^z - 1)/z and log(1 + z)/z, and their derivatives, by series near 0 (cpab._by_series): each
 * pair from one call of expm1 (and one of exp) or of log1p, which the torch code makes twice. */
static double expm1_ratio(double z, double e_z, double em1_z, double *prime) {
    *prime = fabs(z) < 1e-2 ? series(z, EXPM1_RATIO_PRIME, 6) : (z * e_z - em1_z) / (z * z);
    return fabs(z) < 1e-3 ? series(z, EXPM1_RATIO, 5) : em1_z / z;
}

static double log1p_ratio(double z, double *prime) {
    double l = fabs(z) < 1e-3 ? 0.0 : log1p(z);
    *prime = fabs(z) < 1e-2 ? series(z, LOG1P_RATIO_PRIME, 8) : (z / (1 + z) - l) / (z * z);
    return fabs(z) < 1e-3 ? series(z, LOG1P_RATIO, 5) : l / z;
}

/* cpab._hit_time: the time to travel dist from velocity v in a cell of slope a (inf where not ok),
 * and its sensitivities to v and a (0 where not ok). */
static double hit_time(double dist, double v, double a, int ok, double *sens_v, double *sens_a) {
    if (!ok) {
        *sens_v = *sens_a = 0.0;
        return INFINITY;
    }
    double ratio = dist / v, z = a * ratio, f_prime;
    double f = log1p_ratio(z, &f_prime);
    *sens_v = -ratio * (f + z * f_prime) / v;
    *sens_a = ratio * ratio * f_prime;
    return ratio * f;
}

/* clamp that keeps NaN (as torch.clamp) */
static double clamp(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

static int64_t clamp_index(int64_t i, int64_t lo, int64_t hi) { return i < lo ? lo : (i > hi ? hi : i); }

/* One θ row: the field (cpab.velocity_coefficients), then every grid point (cpab.integrate). */
static void grid_row(const double *theta, const double *vmap, const double *grid, int64_t size, int64_t cells,
                     double *displacement, double *slope_out, double *weights, int32_t *first, int32_t *last_out,
                     double *table) {
    const int64_t P = cells - 1;
    const double h = 1.0 / (double)cells;
    double w[MAX_CELLS + 1], a_all[MAX_CELLS], b_all[MAX_CELLS];
    double tau_r[MAX_CELLS], sv_r[MAX_CELLS], sa_r[MAX_CELLS], tau_l[MAX_CELLS], sv_l[MAX_CELLS], sa_l[MAX_CELLS];
    double capped_r[MAX_CELLS], capped_l[MAX_CELLS], prefix_r[MAX_CELLS], prefix_l[MAX_CELLS];

    w[0] = w[cells] = 0.0;
    for (int64_t k = 0; k < P; k++) {
        double s = 0.0;
        for (int64_t p = 0; p < P; p++) s += theta[p] * vmap[k * P + p];
        w[k + 1] = s;
    }
    for (int64_t c = 0; c < cells; c++) {
        a_all[c] = (w[c + 1] - w[c]) * (double)cells;
        b_all[c] = w[c] - a_all[c] * ((double)c / (double)cells);
    }
    for (int64_t c = 0; c < cells; c++) {
        double left = (double)c * h, right = left + h;
        double w_left = a_all[c] * left + b_all[c], w_right = a_all[c] * right + b_all[c];
        tau_r[c] = hit_time(h, w_left, a_all[c], (w_left > 0) & (w_right > 0) & (c < cells - 1), sv_r + c, sa_r + c);
        tau_l[c] = hit_time(-h, w_right, a_all[c], (w_left < 0) & (w_right < 0) & (c > 0), sv_l + c, sa_l + c);
        capped_r[c] = tau_r[c] > 2.0 ? 2.0 : tau_r[c];
        capped_l[c] = tau_l[c] > 2.0 ? 2.0 : tau_l[c];
    }
    double acc = 0.0;
    for (int64_t c = 0; c < cells; c++) prefix_r[c] = acc += capped_r[c]; /* [k] = Σ_{c<=k} */
    prefix_l[0] = 0.0;
    for (int64_t c = 1; c < cells; c++) prefix_l[c] = prefix_l[c - 1] + capped_l[c - 1]; /* [k] = Σ_{c<k} */

    if (table) { /* rows: d(slopes)/dθ, d(intercepts)/dθ, then the prefix sums of dτ/dθ */
        double *jac_a = table, *jac_b = table + cells * P;
        double *pre_r = table + 2 * cells * P, *pre_l = table + (3 * cells + 1) * P;
        for (int64_t p = 0; p < P; p++) {
            for (int64_t c = 0; c < cells; c++) {
                double lo = c == 0 ? 0.0 : vmap[(c - 1) * P + p], hi = c == cells - 1 ? 0.0 : vmap[c * P + p];
                jac_a[c * P + p] = (hi - lo) * (double)cells;
                jac_b[c * P + p] = lo - jac_a[c * P + p] * ((double)c / (double)cells);
            }
            pre_r[p] = pre_l[p] = 0.0;
            for (int64_t c = 0; c < cells; c++) {
                double left = (double)c * h, right = left + h, ja = jac_a[c * P + p], jb = jac_b[c * P + p];
                double d_r = sv_r[c] * (ja * left + jb) + sa_r[c] * ja;
                double d_l = sv_l[c] * (ja * right + jb) + sa_l[c] * ja;
                pre_r[(c + 1) * P + p] = pre_r[c * P + p] + d_r;
                pre_l[(c + 1) * P + p] = pre_l[c * P + p] + d_l;
            }
        }
    }

    for (int64_t j = 0; j < size; j++) {
        const double u = grid[j];
        double scaled = u * (double)cells;
        if (isnan(scaled)) scaled = 0.0;
        const int64_t c0 = (int64_t)clamp(floor(scaled), 0.0, (double)(cells - 1));
        const double a0 = a_all[c0], b0 = b_all[c0];
        const double v0 = (u == 0.0 || u == 1.0) ? a0 * (u - u) : a0 * u + b0;
        const int rightward = v0 > 0, leftward = v0 < 0;
        const double edge = (double)(c0 + rightward) * h;
        const int interior = rightward ? c0 < cells - 1 : c0 > 0;
        const int can_leave = (v0 != 0) & (v0 * (a0 * edge + b0) > 0) & interior;
        double sv0, sa0;
        const double t0 = hit_time(edge - u, v0, a0, can_leave, &sv0, &sa0);
        const double budget = 1 - t0;

        int64_t crossings = 0;
        if (rightward) { /* #{k: P[k] < P[c0] + budget} - c0 */
            double bound = prefix_r[c0] + budget;
            int64_t below = 0;
            for (int64_t k = 0; k < cells; k++) below += prefix_r[k] < bound;
            crossings = below - c0;
        } else if (leftward) { /* c0 + 1 - #{k: P[k] <= P[c0] - budget} */
            double bound = prefix_l[c0] - budget;
            int64_t at_most = 0;
            for (int64_t k = 0; k < cells; k++) at_most += prefix_l[k] <= bound;
            crossings = c0 + 1 - at_most;
        }
        crossings = crossings < 0 ? 0 : crossings;
        const int crossed = crossings > 0;
        const int64_t last = clamp_index(rightward ? c0 + crossings : c0 - crossings, 0, cells - 1);
        const int64_t entry_vertex = rightward ? last : last + 1;
        const int64_t stop = clamp_index(rightward ? last - 1 : last + 1, 0, cells - 1);
        double run = 0.0; /* the capped times of the cells crossed whole, in the torch tables' order */
        if (rightward) {
            for (int64_t c = c0 + 1; c <= stop; c++) run += capped_r[c];
        } else {
            for (int64_t c = c0 - 1; c >= stop; c--) run += capped_l[c];
        }
        const double t = crossed ? 1 - (t0 + run) : 1.0;
        const double x = crossed ? (double)entry_vertex * h : u;
        const double a = a_all[last], b = b_all[last];
        const double v = crossed ? a * x + b : v0;
        const double at = a * t, e_at = exp(at);
        double g_prime, g_at = expm1_ratio(at, e_at, fabs(at) < 1e-3 ? 0.0 : expm1(at), &g_prime);
        g_at = g_at > DBL_MAX ? DBL_MAX : g_at;
        const int pinned = j == 0 || j == size - 1; /* the ends are fixed points: D and dD/dθ are 0 */
        const double d = clamp(x + t * g_at * v, 0.0, 1.0) - u;
        displacement[j] = pinned ? d * 0.0 : d;
        if (slope_out) slope_out[j] = crossed ? e_at * v / v0 : exp(a0);
        if (weights) {
            const double dpsi_dt = (crossed && v != 0) ? e_at * v : 0.0;
            double *wj = weights + 6 * j;
            wj[0] = t * (x * g_at + t * v * g_prime);
            wj[1] = t * g_at;
            wj[2] = -dpsi_dt * (u * sv0 + sa0);
            wj[3] = -dpsi_dt * sv0;
            wj[4] = rightward ? -dpsi_dt : 0.0;
            wj[5] = rightward ? 0.0 : -dpsi_dt;
            if (pinned) wj[0] = wj[1] = wj[2] = wj[3] = wj[4] = wj[5] = 0.0;
            first[j] = (int32_t)c0;
            last_out[j] = (int32_t)last;
        }
    }
}

/* Rows in parts (parallel.h): part i holds rows [parts[2i], parts[2i] + parts[2i + 1]). */
void cpab_grid(const int64_t *parts, int64_t count, const double *theta, const double *vertex_map, const double *grid,
               double *displacement, double *slope, double *weights, int32_t *first, int32_t *last, double *table,
               int64_t size, int64_t cells) {
    const int64_t P = cells - 1, rows_per = 4 * cells + 2;
    if (cells < 2 || cells > MAX_CELLS) return; /* the caller checks cpab_max_cells(): never here */
    FOR_EACH_PART(parts, count, 2, for (int64_t r = p[0]; r < p[0] + p[1]; r++) {
        grid_row(theta + r * P, vertex_map, grid, size, cells, displacement + r * size, slope ? slope + r * size : NULL,
                 weights ? weights + r * size * 6 : NULL, weights ? first + r * size : NULL,
                 weights ? last + r * size : NULL, weights ? table + r * rows_per * P : NULL);
    });
}

/* JacobianTerms.contract: out[r] = Σ_j grad[r, j]·dT(u_j)/dθ, through the per-row sums of the
 * weighted table rows. */
static void contract_rows(const double *grad, const double *weights, const int32_t *first, const int32_t *last,
                          const double *table, double *out, int64_t first_row, int64_t count, int64_t size,
                          int64_t cells) {
    const int64_t P = cells - 1, K = 4 * cells + 2;
    const int64_t base_b = cells, base_right = 2 * cells, base_left = 3 * cells + 1;
    double per_row[4 * MAX_CELLS + 2];
    for (int64_t r = first_row; r < first_row + count; r++) {
        for (int64_t k = 0; k < K; k++) per_row[k] = 0.0;
        const double *g = grad + r * size, *w = weights + r * size * 6;
        for (int64_t j = 0; j < size; j++) {
            const int64_t c0 = first[r * size + j], m = last[r * size + j];
            const double *wj = w + 6 * j;
            per_row[m] += g[j] * wj[0];
            per_row[base_b + m] += g[j] * wj[1];
            per_row[c0] += g[j] * wj[2];
            per_row[base_b + c0] += g[j] * wj[3];
            per_row[base_right + clamp_index(m, 0, cells)] += g[j] * wj[4];
            per_row[base_right + clamp_index(c0 + 1, 0, cells)] -= g[j] * wj[4];
            per_row[base_left + clamp_index(c0, 0, cells)] += g[j] * wj[5];
            per_row[base_left + clamp_index(m + 1, 0, cells)] -= g[j] * wj[5];
        }
        const double *t = table + r * K * P;
        for (int64_t p = 0; p < P; p++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) s += per_row[k] * t[k * P + p];
            out[r * P + p] = s;
        }
    }
}

void cpab_contract(const int64_t *parts, int64_t count, const double *grad, const double *weights,
                   const int32_t *first, const int32_t *last, const double *table, double *out, int64_t size,
                   int64_t cells) {
    if (cells < 2 || cells > MAX_CELLS) return; /* as in cpab_grid */
    FOR_EACH_PART(parts, count, 2, contract_rows(grad, weights, first, last, table, out, p[0], p[1], size, cells));
}
