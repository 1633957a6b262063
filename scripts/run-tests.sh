#!/usr/bin/env bash
# Runs the whole test suite: unit tests under ASan/UBSan, then the peer tests
# (llama.cpp, PyTorch, scikit-learn, rapidfuzz/jellyfish as oracles) and the
# end-to-end CLI/server tests. Ends with one line: "N passed, N failed".
# Options: --no-setup (skip dependency install and model fetch), --only PATTERN.
set -uo pipefail
cd "$(dirname "$0")/.."

setup=1; only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-setup) setup=0 ;;
    --only) only="$2"; shift ;;
    *) echo "run-tests: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ $setup = 1 ]; then
  scripts/setup-deps.sh || { echo "run-tests: dependency setup failed"; exit 1; }
  scripts/fetch-model.sh || { echo "run-tests: model fetch failed"; exit 1; }
fi

JOBS=$(nproc)
make -s -j"$JOBS" WERROR=1 all || { echo "0 passed, 1 failed (release build)"; exit 1; }
make -s -j"$JOBS" WERROR=1 BUILD=build-asan MODE=asan all unit-tests || { echo "0 passed, 1 failed (asan build)"; exit 1; }

export TASKLM="$PWD/build/tasklm"
export TASKLM_ASAN="$PWD/build-asan/tasklm"
export TASKLM_MODEL="$PWD/models/smollm2-135m-instruct-q4_1.gguf"
export TASKLM_ROOT="$PWD"
export PYTHONPATH="$PWD/tests/peer:$PWD/tests/e2e${PYTHONPATH:+:$PYTHONPATH}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
PY="$PWD/.venv/bin/python"

total_pass=0; total_fail=0; failed_names=()
run_one() {
  local name="$1"; shift
  if [ -n "$only" ] && [[ "$name" != *$only* ]]; then return; fi
  local log; log=$(mktemp)
  local t0=$SECONDS
  "$@" >"$log" 2>&1
  local rc=$?
  local line; line=$(grep -E '^RESULT passed=[0-9]+ failed=[0-9]+$' "$log" | tail -1)
  local p=0 f=0
  if [ -n "$line" ]; then
    p=$(echo "$line" | sed -E 's/.*passed=([0-9]+).*/\1/')
    f=$(echo "$line" | sed -E 's/.*failed=([0-9]+).*/\1/')
  fi
  if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi   # crashed or exited non-zero without reporting
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  if [ "$f" != 0 ]; then
    failed_names+=("$name")
    echo "FAIL $name ($p passed, $f failed, rc=$rc, $((SECONDS - t0))s)"
    grep -v -E '^ok ' "$log" | tail -40 | sed 's/^/    /'
  else
    echo "ok   $name ($p passed, $((SECONDS - t0))s)"
  fi
  rm -f "$log"
}

for t in build-asan/tests/test_*; do
  [ -x "$t" ] && run_one "unit/$(basename "$t")" "$t"
done
for t in tests/peer/test_*.py tests/e2e/test_*.py; do
  [ -f "$t" ] && run_one "${t#tests/}" "$PY" "$t"
done
for t in tests/e2e/test_*.sh; do
  [ -f "$t" ] && run_one "${t#tests/}" bash "$t"
done

[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
