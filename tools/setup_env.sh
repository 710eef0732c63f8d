#!/usr/bin/env bash
# Creates the virtual environment of a profile at the repo root:
#   classic (default): .venv, the verified stack (shared/DESIGN.md), Horovod 0.28.1 compiled;
#   modern (--profile modern): .venv-modern, python/requirements-modern.txt (Spark 4.3, Keras 3,
#   numpy 2), no Horovod and no Petastorm;
#   docs (--profile docs): .venv-docs, python/requirements-docs.txt (mkdocs, for gradle docs);
#   platform (--profile platform): .venv-platform, python/requirements-platform.txt on Python 3.12,
#   the platform install test's stack (no deepflash).
# Idempotent: a stamp holding the hash of the inputs makes a second run a no-op.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PROFILE=classic
if [ "${1:-}" = "--profile" ]; then PROFILE="${2:?--profile needs classic or modern}"; fi
case "$PROFILE" in
  classic) VENV="$ROOT/.venv"; REQS="$ROOT/python/requirements.txt" ;;
  modern) VENV="$ROOT/.venv-modern"; REQS="$ROOT/python/requirements-modern.txt" ;;
  docs) VENV="$ROOT/.venv-docs"; REQS="$ROOT/python/requirements-docs.txt" ;;
  # The platform install test's stack alone (python/requirements-platform.txt, Python 3.12, no
  # deepflash): tests/platform copies it and installs the wheel into the copy.
  platform) VENV="$ROOT/.venv-platform"; REQS="$ROOT/python/requirements-platform.txt" ;;
  *) echo "--profile == $PROFILE, must be classic, modern, docs or platform" >&2; exit 2 ;;
esac
PY="${DEEPFLASH_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ "$PROFILE" = platform ]; then
  PY="${DEEPFLASH_PLATFORM_PYTHON:-$( (ls -d "$(pyenv root 2>/dev/null)"/versions/3.12.*/bin/python3.12 2>/dev/null || true) | tail -1)}"
  [ -x "$PY" ] || PY="$(command -v python3.12 || true)"
  # Without a Python 3.12 the platform test skips; nothing to build for it.
  [ -n "$PY" ] || { echo "deepflash setup: no Python 3.12, so no platform stack (tests/platform skips)"; exit 0; }
fi
STAMP="$VENV/.deepflash-setup"
# One setup of a profile at a time (tools/setup_all.sh runs the profiles side by side): a second
# one waits here, then finds the stamp.
exec 9>"$VENV.lock"
flock 9
HASH="$(cat "$REQS" "$ROOT/python/requirements-gp.txt" "$ROOT/python/requirements-connect-classic.txt" "$ROOT/python/pyproject.toml" "$ROOT/tools/setup_env.sh" | sha256sum | cut -c1-32)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  echo "deepflash setup: $(basename "$VENV") is up to date"
  exit 0
fi

if [ "$PROFILE" = platform ]; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet -r "$REQS"
  echo "$HASH" > "$STAMP"
  echo "deepflash setup: platform stack ready ($("$VENV/bin/python" --version))"
  exit 0
fi
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found %s" % sys.version.split()[0]'
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade "pip<25"
if [ "$PROFILE" = docs ]; then
  $PIP install --quiet -r "$REQS"
  "$VENV/bin/python" -m mkdocs --version
  echo "$HASH" > "$STAMP"
  exit 0
fi
echo "deepflash setup: installing the pinned $PROFILE stack ($(basename "$REQS"))"
$PIP install --quiet -r "$REQS"
# PyTorch for Optuna's GP sampler (the gp extra), on both profiles, without its setuptools>=77 pin
# that the lock files' setuptools<70 excludes (see python/requirements-gp.txt).
$PIP install --quiet --no-deps -r "$ROOT/python/requirements-gp.txt"

if [ "$PROFILE" = modern ]; then
  $PIP install --quiet --no-deps --no-build-isolation -e "$ROOT/python"
  "$VENV/bin/python" -c "import deepflash, keras, pyspark, hyperopt, optuna, mlflow; print('deepflash setup: ok (modern), pyspark', pyspark.__version__, 'keras', keras.__version__)"
  echo "$HASH" > "$STAMP"
  exit 0
fi

# Spark Connect's client on pyspark 4.0 needs a protobuf newer than TensorFlow 2.15 declares
# (see python/requirements-connect-classic.txt).
$PIP install --quiet --no-deps -r "$ROOT/python/requirements-connect-classic.txt"

if ! "$VENV/bin/python" -c "import horovod.tensorflow.keras, horovod.spark" >/dev/null 2>&1; then
  # The system cmake (3.25) is required: pip's cmake 4.x rejects gloo's cmake_minimum_required.
  command -v cmake >/dev/null || { echo "cmake is missing: apt-get install cmake g++" >&2; exit 1; }
  echo "deepflash setup: building horovod 0.28.1 with TensorFlow and Gloo (about 10 minutes the first time; pip caches the wheel)"
  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
  HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    $PIP install --quiet --no-build-isolation horovod==0.28.1
fi

$PIP install --quiet --no-deps --no-build-isolation -e "$ROOT/python"
"$VENV/bin/python" -c "import deepflash, horovod.tensorflow.keras, petastorm, pyspark, hyperopt, mlflow; print('deepflash setup: ok, pyspark', pyspark.__version__)"
echo "$HASH" > "$STAMP"
