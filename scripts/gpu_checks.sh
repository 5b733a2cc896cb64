#!/usr/bin/env bash
# Every check that needs an NVIDIA GPU, in one command sized for a short lease of a GPU machine
# (about 10 minutes in all). CI has no GPU, so these run only where one is available.
#
#   scripts/gpu_checks.sh [OUT_DIR]          # default OUT_DIR: gpu-checks
#
# It uses the machine's own python3, which must hold a CUDA build of PyTorch, Triton and pytest,
# with this checkout's src/ on PYTHONPATH: nothing is installed or downloaded. Steps, each under
# its own time limit so that one slow step cannot take the others' time:
#
#   1. pytest -m gpu: the Triton kernels of every elementwise op in float32, bfloat16 and float16;
#      the inductor kernels on CUDA; "auto" choosing Triton; DiTAC and SLAF on CUDA against the CPU;
#      a lab run on CUDA;
#   2. benchmarks/speed.py --device cuda --quick: forward+backward and saved bytes at 2^26 elements
#      (float32 and bfloat16) as ratios to F.silu, and training steps against ReLU and GELU;
#   3. benchmarks/ditac_speed.py --device cuda: DiTAC against GELU at 2^22 elements.
#
# Each step writes a log (and the benchmarks JSON) to OUT_DIR; the exit status is the number of
# steps that failed.
set -uo pipefail

out=$(mkdir -p "${1:-gpu-checks}" && cd "${1:-gpu-checks}" && pwd) || exit 2
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$out/inductor-cache}"
python=${PYTHON:-python3}

"$python" - <<'EOF' 2>&1 | tee "$out/environment.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
try:
    import triton

    print("triton", triton.__version__)
except ImportError:
    print("triton missing: the Triton tests and columns will be skipped")
EOF

if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_checks.sh: $python sees no CUDA device; these checks need an NVIDIA GPU (CI runs the rest)" >&2
    exit 2
fi

failed=0
step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    if ! timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"; then
        echo "== $name FAILED (see $out/$name.log)"
        failed=$((failed + 1))
    fi
}

step tests 300 "$python" -m pytest -q -p no:cacheprovider -m gpu tests
step speed 240 "$python" benchmarks/speed.py --device cuda --quick --json "$out/speed.json"
step ditac_speed 120 "$python" benchmarks/ditac_speed.py --device cuda --json "$out/ditac_speed.json"

echo "== $failed step(s) failed; logs in $out/"
exit "$failed"
