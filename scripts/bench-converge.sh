#!/usr/bin/env bash
# Speed of the bundle itself, against the sandbox over SSH:
#   1. the first converge of site.yml on a fresh host,
#   2. no-op re-runs with the project's ansible.cfg,
#   3. the same no-op re-runs with Ansible's real defaults (no pipelining,
#      Ansible's own ssh_args with its 60 s ControlPersist, no fact cache,
#      5 forks), and with the project's ansible.cfg under Mitogen's strategy
#      (the opt-in ANSIBLE_STRATEGY=mitogen_linear), alternating with 2. over
#      BENCH_ROUNDS rounds (default 2);
#   4. the floor: a playbook of as many ansible.builtin.ping tasks as the
#      tuned no-op ran (ok, changed included; skipped ones not), with the
#      project's ansible.cfg, timed the same way.
# Each run counts its own tasks. Prints RESULT lines per run, then the best
# and the median of each case; see docs/benchmarks.md for recorded figures.
#
# SANDBOX=cluster times the six-host sandbox instead, with the same cases
# (docs/scaling.md compares the two topologies).
set -euo pipefail
cd "$(dirname "$0")/.."

out=.cache/bench-converge
mkdir -p "${out}"
topology=${SANDBOX:-aio}
case "${topology}" in
  aio) inventory=inventory/sandbox ;;
  cluster) inventory=inventory/sandbox-cluster ;;
  *) echo "SANDBOX must be aio or cluster" >&2; exit 2 ;;
esac
vault=inventory/sandbox/vault-password.txt
hosts=$(ansible-inventory -i "${inventory}" --vault-password-file "${vault}" --list | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["_meta"]["hostvars"]))')

results="${out}/runs.tsv"
: >"${results}"
run() { # case label, then env assignments for ansible-playbook (PLAYBOOK: site.yml unless set)
  local label=$1; shift
  local start end seconds tasks changed
  start=$(date +%s.%N)
  env "$@" ANSIBLE_NOCOLOR=1 ansible-playbook -i "${inventory}" --vault-password-file "${vault}" \
    "${PLAYBOOK:-playbooks/site.yml}" >"${out}/${label}.log" 2>&1 || { tail -n 40 "${out}/${label}.log" >&2; exit 1; }
  end=$(date +%s.%N)
  seconds=$(awk -v a="${start}" -v b="${end}" 'BEGIN { printf "%.1f", b - a }')
  # This run's own tasks: ok (changed ones included) + skipped, over every host of its recap.
  read -r tasks changed < <(awk '/^[^ ].*: ok=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "ok" || kv[1] == "skipped") t += kv[2]; if (kv[1] == "changed") c += kv[2] } } END { print t + 0, c + 0 }' "${out}/${label}.log")
  printf '%s\t%s\t%s\t%s\n' "${label%%_r[0-9]*}" "${seconds}" "${tasks}" "${changed}" >>"${results}"
  echo "RESULT case=${label} topology=${topology} hosts=${hosts} seconds=${seconds} tasks=${tasks} changed=${changed}"
  if [ "${label}" != first ] && [ "${changed}" -ne 0 ]; then
    echo "bench-converge: the no-op run ${label} changed ${changed} task(s)" >&2
    exit 1
  fi
}

# Ansible's real defaults: the project's cfg without its tuning. Nothing is
# set that Ansible would not set itself: ssh_args stays Ansible's own default
# (-C -o ControlMaster=auto -o ControlPersist=60s), pipelining is off, facts
# are gathered on every play and not cached, forks are 5.
cat >"${out}/defaults.cfg" <<CFG
[defaults]
collections_path = ${PWD}:${PWD}/collections
host_key_checking = true
interpreter_python = auto_silent
[vars_host_group_vars]
stage = inventory
CFG

scripts/sandbox.sh destroy >/dev/null
rm -rf .cache/ansible-facts
SANDBOX_SKIP_CONVERGE=1 scripts/sandbox.sh up >/dev/null

run first ANSIBLE_CONFIG="${PWD}/ansible.cfg"
# The no-op re-runs alternate between the two configurations, round after
# round, so that both see the same machine; best and median are reported.
rounds=${BENCH_ROUNDS:-2}
for round in $(seq 1 "${rounds}"); do
  run "noop_tuned_r${round}" ANSIBLE_CONFIG="${PWD}/ansible.cfg"
  run "noop_mitogen_r${round}" ANSIBLE_CONFIG="${PWD}/ansible.cfg" ANSIBLE_STRATEGY=mitogen_linear
  run "noop_default_r${round}" ANSIBLE_CONFIG="${out}/defaults.cfg"
done
# The floor: as many of the cheapest task there is (a module round trip that
# does nothing) as the tuned no-op ran, spread evenly over the hosts, with
# the same settings (facts come from the same cache, so neither gathers).
ran=$(awk '/^[^ ].*: ok=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "ok") t += kv[2] } } END { print t + 0 }' "${out}/noop_tuned_r1.log")
per_host=$(( (ran + hosts - 1) / hosts ))
{
  echo "---"
  echo "- name: The floor, ${per_host} ping tasks a host"
  echo "  hosts: all"
  echo "  tasks:"
  for i in $(seq 1 "${per_host}"); do
    printf '    - name: Ping %s\n      ansible.builtin.ping:\n' "${i}"
  done
} >"${out}/floor.yml"
for round in $(seq 1 "${rounds}"); do
  PLAYBOOK="${out}/floor.yml" run "floor_r${round}" ANSIBLE_CONFIG="${PWD}/ansible.cfg"
done

python3 - "${results}" "${topology}" "${hosts}" <<'PY'
import statistics
import sys

rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
topology, hosts = sys.argv[2], int(sys.argv[3])
cases = {}
for case, seconds, tasks, _ in rows:
    cases.setdefault(case, []).append((float(seconds), int(tasks)))
first = cases["first"][0][0]
summary, per_task = {}, {}
for case in ("noop_tuned", "noop_mitogen", "noop_default", "floor"):
    if case not in cases:
        continue
    runs = cases[case]
    best = min(s for s, _ in runs)
    median = statistics.median(s for s, _ in runs)
    per_task[case] = statistics.median(s / t for s, t in runs)
    summary[case] = median
    print(
        f"RESULT case={case} topology={topology} hosts={hosts} rounds={len(runs)} best_s={best:.1f} "
        f"median_s={median:.1f} tasks={runs[0][1]} s_per_task={per_task[case]:.3f}"
    )
line = f"RESULT case=summary topology={topology} hosts={hosts} noop_to_first_ratio={summary['noop_tuned'] / first:.3f}"
if "noop_default" in summary:
    line += f" default_to_tuned_speedup={summary['noop_default'] / summary['noop_tuned']:.2f}"
# The floor ran as many task executions as the tuned no-op's ok count;
# noop_to_floor compares whole runs.
line += (
    f" floor_s_per_task={per_task['floor']:.3f} noop_to_floor={summary['noop_tuned'] / summary['floor']:.2f}"
    f" mitogen_to_tuned={summary['noop_mitogen'] / summary['noop_tuned']:.2f}"
)
print(line + f" first_s_per_host={first / hosts:.1f} noop_s_per_host={summary['noop_tuned'] / hosts:.1f}")
PY
