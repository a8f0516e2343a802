#!/usr/bin/env bash
# `make test`: every check, timed, in the least wall time two cores allow.
#
#   1. setup, then the release artifacts the scenarios share (built once);
#   2. the Molecule scenarios start in the background (niced), while lint,
#      the repository tests, the dependency audit and the app's tests run in
#      the foreground: those are single-threaded, so the scenarios get the
#      other core instead of waiting for them;
#   3. the timing table (scripts/timing.py), also in .cache/test-timing.txt.
#
# A failed foreground check stops the scenarios; the table is printed either
# way, and the exit status is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

make=${MAKE:-make}
timing=.cache/timing
rm -rf "${timing}"
mkdir -p "${timing}"
date +%s >"${timing}/started"

step() { python3 scripts/timing.py run "$1" -- "${make}" --no-print-directory "$1"; }

finish() {
  python3 scripts/timing.py table
  if [ -n "$1" ]; then
    echo "make test: failed: $1"
    exit 1
  fi
  echo "make test: all checks passed"
  exit 0
}

for first in setup artifacts; do
  step "${first}" || finish "${first}"
done

# The scenarios in a process group of their own, so that a failure in the
# foreground can stop all of them.
setsid nice -n 10 python3 scripts/timing.py run molecule -- "${make}" --no-print-directory molecule \
  >"${timing}/molecule.out" 2>&1 &
molecule_pid=$!
echo "make test: Molecule scenarios started beside the other checks (output follows when they end)"

failed=""
for beside in lint test-repo audit-deps test-app; do
  if ! step "${beside}"; then
    failed=${beside}
    break
  fi
done
if [ -n "${failed}" ]; then
  echo "make test: ${failed} failed; stopping the Molecule scenarios"
  kill -TERM -- "-${molecule_pid}" 2>/dev/null || true
fi
wait "${molecule_pid}" || failed="${failed:+${failed} }molecule"
cat "${timing}/molecule.out"
finish "${failed}"
