#!/usr/bin/env bash
# Sets up several profiles at once (tools/setup_env.sh for each, side by side): `gradle test`'s full
# chain needs the classic, modern and docs environments and the platform test's stack, and their
# installs are mostly unpacking wheels, which overlap well. Each profile's output goes to
# build/setup-<profile>.log and is printed when it ends; the script fails when any profile fails.
# setup_env.sh serializes two setups of one profile with a lock, so a later
# `setup_env.sh --profile modern` waits for this one and finds it done.
# Usage: tools/setup_all.sh classic modern docs platform
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$ROOT/build"
declare -A PIDS
for profile in "$@"; do
  bash "$ROOT/tools/setup_env.sh" --profile "$profile" > "$ROOT/build/setup-$profile.log" 2>&1 &
  PIDS[$profile]=$!
done
failed=0
for profile in "$@"; do
  if wait "${PIDS[$profile]}"; then
    sed "s/^/[$profile] /" "$ROOT/build/setup-$profile.log"
  else
    echo "deepflash setup: the $profile profile failed; its log (build/setup-$profile.log):" >&2
    sed "s/^/[$profile] /" "$ROOT/build/setup-$profile.log" >&2
    failed=1
  fi
done
exit $failed
