"""Wall time of an ``actlab compare`` study, run as a user runs it (a fresh process).

Runs the command in a new output folder (so nothing is resumed), and prints the
wall time, the CPU time of the whole process tree, the machine's load average
before and after (a loaded machine stretches wall time, not CPU time), and the
command's own output (the comparison table).

Usage::

    python benchmarks/lab_compare.py                                  # the default study
    python benchmarks/lab_compare.py -- --task fashion_mnist --model cnn \\
        --activations relu,gelu,srs,serf,zorro,aglu --epochs 4 --limit 4000

Everything after ``--`` is passed to ``actlab compare``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="output folder (default: a new temporary folder)")
    parser.add_argument("compare_args", nargs=argparse.REMAINDER, help="arguments for actlab compare (after --)")
    args = parser.parse_args()
    extra = [a for a in args.compare_args if a != "--"]
    out = args.out or tempfile.mkdtemp(prefix="actlab-bench-")
    command = [sys.executable, "-m", "actlab", "compare", "--out", out, "--quiet", *extra]
    load_before = os.getloadavg()
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_after = os.getloadavg()
    print(completed.stdout)
    if completed.returncode:
        print(completed.stderr, file=sys.stderr)
    print(f"command:      actlab compare --out {out} --quiet {' '.join(extra)}")
    print(f"exit code:    {completed.returncode}")
    print(f"wall time:    {wall:.1f} s")
    print(f"CPU time:     {usage.ru_utime + usage.ru_stime:.1f} s (driver and workers, user + system)")
    print(f"cores:        {os.cpu_count()}")
    print(f"load average: {load_before[0]:.2f} before, {load_after[0]:.2f} after (1-minute)")
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
