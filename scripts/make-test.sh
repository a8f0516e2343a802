#!/usr/bin/env bash
# `make test`: every check, timed, in the least wall time two cores allow.
#
#   1. setup: the tools, then the test hosts' images beside the release
#      artifacts the scenarios share (each built once);
#   2. the Molecule scenarios start in the background (niced), while lint
#      (ansible-test sanity with it), the release (make dist), the
#      repository tests, the dependency audit and the app's tests run in the
#      foreground: those are single-threaded, so the scenarios get the other
#      core instead of waiting for them;
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

step tools || finish tools
# The test hosts' images and the release artifacts need nothing of each
# other: built side by side (debootstrap waits on the mirror, the artifact
# builds on pip and the CPU).
python3 scripts/timing.py run images -- "${make}" --no-print-directory images &
images_pid=$!
step artifacts
artifacts_rc=$?
wait "${images_pid}"
images_rc=$?
[ "${images_rc}" -eq 0 ] || finish images
[ "${artifacts_rc}" -eq 0 ] || finish artifacts

# The scenarios in a process group of their own, so that a failure in the
# foreground can stop all of them.
setsid nice -n 10 python3 scripts/timing.py run molecule -- "${make}" --no-print-directory molecule \
  >"${timing}/molecule.out" 2>&1 &
molecule_pid=$!
echo "make test: Molecule scenarios started beside the other checks (their lines follow as scenarios end)"

# The scenarios' own lines (one per finished scenario), as they come, and
# where each unfinished one stands: a run stopped by a time limit still
# shows where its time went.
shown=0
molecule_news() {
  local total
  total=$(wc -l <"${timing}/molecule.out")
  if [ "${total}" -gt "${shown}" ]; then
    sed -n "$((shown + 1)),${total}p" "${timing}/molecule.out"
    shown=${total}
  fi
  python3 scripts/timing.py progress
}

failed=""
for beside in lint dist test-repo audit-deps test-app; do
  if ! step "${beside}"; then
    failed=${beside}
    break
  fi
  molecule_news
done
if [ -n "${failed}" ]; then
  echo "make test: ${failed} failed; stopping the Molecule scenarios"
  kill -TERM -- "-${molecule_pid}" 2>/dev/null || true
fi
ticks=0
while kill -0 "${molecule_pid}" 2>/dev/null; do
  sleep 10
  ticks=$((ticks + 1))
  if [ $((ticks % 30)) -eq 0 ]; then molecule_news; fi
done
wait "${molecule_pid}" || failed="${failed:+${failed} }molecule"
molecule_news
finish "${failed}"
