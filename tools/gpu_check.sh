#!/usr/bin/env bash
# The GPU path for real (stage-level scheduling, one GPU per rank, training and transform on the
# GPUs), on a machine with NVIDIA GPUs and the profile's venv: see tools/gpu_check.py.
#   tools/gpu_check.sh [--profile classic|modern] [--fake] [--epochs N]
# Prints a GPU-CHECK {json} line; exits 0 when every check passed, 1 when one failed, 2 without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=classic
if [[ "${1:-}" == "--profile" ]]; then profile="$2"; shift 2; fi
venv=.venv; [[ "$profile" == modern ]] && venv=.venv-modern
export PYSPARK_PYTHON="$PWD/$venv/bin/python" PYSPARK_DRIVER_PYTHON="$PWD/$venv/bin/python" TF_CPP_MIN_LOG_LEVEL=2
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L 2>/dev/null || echo "gpu_check: no nvidia-smi here"
exec "$venv/bin/python" tools/gpu_check.py "$@"
