#!/usr/bin/env bash
# Run Molecule scenarios, a few at a time, each with its own log.
#
#   scripts/molecule-all.sh [-j N] SCENARIO...
#
# Scenarios spend much of their time waiting on package downloads, so two
# side by side finish sooner than one after the other, even on two cores.
# Prints one line per scenario, and the end of the log of any that failed.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=2
if [ "${1:-}" = "-j" ]; then jobs=$2; shift 2; fi
# The scenarios on the critical path (the longest, which ends the run) keep
# the lanes' priority; the others run 5 steps nicer, so that the controller
# side of the critical one (Ansible, pytest) is served first while they all
# share the cores, and theirs takes what is left. The containers' own
# processes are not children of these: the critical scenario's containers
# weigh double on the CPU instead (molecule/shared/prepare.yml).
export MOLECULE_CRITICAL=${MOLECULE_CRITICAL:-stack}
critical=" ${MOLECULE_CRITICAL} "
[ $# -gt 0 ] || { echo "usage: $0 [-j N] SCENARIO..." >&2; exit 2; }

logs=.cache/molecule-logs
mkdir -p "${logs}"

run_one() {
  local scenario=$1 start rc
  start=$(date +%s)
  # Containers left by an earlier run (another checkout, or an interrupted
  # one) would otherwise be started again with their old state.
  docker ps -aq --filter "name=^${scenario}-" | xargs -r docker rm -f >/dev/null
  # Marks a failed run, for the end of make test's timing table.
  rm -f "${logs}/${scenario}.failed"
  # The log as Molecule wrote it, and when each of its steps began (for the
  # timing table of make test: scripts/timing.py).
  set -o pipefail
  local nicer=(nice -n 5)
  if [[ "${critical}" == *" ${scenario} "* ]]; then nicer=(); fi
  if "${nicer[@]}" molecule test -s "${scenario}" 2>&1 | python3 scripts/timing.py stamp ".cache/timing/${scenario}.steps" \
      >"${logs}/${scenario}.log"; then rc=0; else rc=$?; fi
  local seconds=$(( $(date +%s) - start ))
  if [ "${rc}" -eq 0 ]; then
    echo "molecule: PASS ${scenario} (${seconds}s): $(grep -Eo '[0-9]+ passed[^=]*' "${logs}/${scenario}.log" | tail -n 1)"
  else
    : >"${logs}/${scenario}.failed"
    echo "molecule: FAIL ${scenario} (${seconds}s); what failed, then the last lines of ${logs}/${scenario}.log:"
    # The first failed tasks and tests, which the recap at the end no longer shows.
    sed 's/\x1b\[[0-9;]*m//g' "${logs}/${scenario}.log" \
      | grep -a -E -A 12 'fatal: |failed: \[|FAILED| E   ' | head -n 120 || true
    echo "..."
    sed 's/\x1b\[[0-9;]*m//g' "${logs}/${scenario}.log" | tail -n 40
  fi
  return "${rc}"
}
export -f run_one
export logs critical

printf '%s\n' "$@" | xargs -P "${jobs}" -I{} bash -c 'run_one "$@"' _ {}
