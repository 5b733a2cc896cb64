/* Parts of one call of a native kernel, run in parallel (actlab.kernels.native).
 *
 * Python splits a call's work into parts (rows of ``width`` int64s: for the element kernels the
 * first run, the runs, the element offset and the elements per run; for the per-row kernels the
 * first row and the rows). Built with -fopenmp, a kernel's ``*_parts`` entry point runs part i on
 * thread i of an OpenMP team: in a torch process, torch's own OpenMP threads (the same libgomp),
 * so that no thread of actlab's competes for a core with torch's workers, which spin for a while
 * after each of torch's parallel operations (in threads of its own, a kernel ran 1.7-2x slower
 * after a torch operation than alone). Built without, the parts run one after the other.
 */
#ifndef ACTLAB_PARALLEL_H
#define ACTLAB_PARALLEL_H

#include <stdint.h>

#define FOR_EACH_PART(parts, count, width, BODY)                                          \
    do {                                                                                  \
        const int part_count = (int)(count);                                              \
        _Pragma("omp parallel for num_threads(part_count) schedule(static, 1)")          \
        for (int i = 0; i < part_count; i++) {                                            \
            const int64_t *p = (parts) + (int64_t)(width) * i;                            \
            BODY;                                                                         \
        }                                                                                 \
    } while (0)

#endif
