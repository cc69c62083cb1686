#!/usr/bin/env bash
# The prepared GPU window of issue 15 (see benchmarks/gpu_window.py for the steps): run it from the repository
# root on a GPU machine, where it takes at most 11 minutes and writes everything under $OUT:
#   OUT=/some/dir benchmarks/gpu_window.sh            # the window
#   OUT=/tmp/w benchmarks/gpu_window.sh --tiny        # toy sizes on the CPU: checks every step works
# It stops at the first failing step (set -e, and the driver's exit code), leaving the finished steps'
# files and summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the window writes to}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-$(command -v python)}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON_SET:-}" ]; then PYTHON=.venv/bin/python; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
{
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
} > "$OUT/machine.txt"
exec "$PYTHON" benchmarks/gpu_window.py --out "$OUT" "$@"
