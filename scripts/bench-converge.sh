#!/usr/bin/env bash
# Speed of the bundle itself, against the sandbox over SSH:
#   1. the first converge of site.yml on a fresh host,
#   2. a no-op re-run with the project's ansible.cfg,
#   3. the same no-op re-run with Ansible's defaults (no pipelining, no SSH
#      ControlPersist, no fact cache), measured in the same run.
# Prints RESULT lines; see docs/benchmarks.md for recorded figures.
#
# SANDBOX=cluster times the six-host sandbox instead (first converge and the
# tuned no-op only; docs/scaling.md compares the two topologies).
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

run() { # label, then env assignments for ansible-playbook
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  env "$@" ANSIBLE_NOCOLOR=1 ansible-playbook -i "${inventory}" --vault-password-file "${vault}" \
    playbooks/site.yml >"${out}/${label}.log" 2>&1 || { tail -n 40 "${out}/${label}.log" >&2; exit 1; }
  end=$(date +%s.%N)
  seconds=$(awk -v a="${start}" -v b="${end}" 'BEGIN { printf "%.1f", b - a }')
  read -r tasks changed < <(awk '/^[^ ].*: ok=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "ok" || kv[1] == "skipped") t += kv[2]; if (kv[1] == "changed") c += kv[2] } } END { print t + 0, c + 0 }' "${out}/${label}.log")
  eval "${label}_s=${seconds} ${label}_tasks=${tasks} ${label}_changed=${changed}"
  echo "RESULT case=${label} topology=${topology} hosts=${hosts} seconds=${seconds} tasks=${tasks} changed=${changed}"
}

# Ansible's own defaults, written out: the project's cfg minus the tuning.
cat >"${out}/defaults.cfg" <<CFG
[defaults]
roles_path = ${PWD}/roles
host_key_checking = true
interpreter_python = auto_silent
[ssh_connection]
pipelining = false
ssh_args =
[vars_host_group_vars]
stage = inventory
CFG

scripts/sandbox.sh destroy >/dev/null
rm -rf .cache/ansible-facts
SANDBOX_SKIP_CONVERGE=1 scripts/sandbox.sh up >/dev/null

run first ANSIBLE_CONFIG="${PWD}/ansible.cfg"
run noop_tuned ANSIBLE_CONFIG="${PWD}/ansible.cfg"
if [ "${topology}" = cluster ]; then
  awk -v first="${first_s}" -v tuned="${noop_tuned_s}" -v hosts="${hosts}" 'BEGIN {
    printf "RESULT case=summary topology=cluster hosts=%d noop_to_first_ratio=%.3f first_s_per_host=%.1f noop_s_per_host=%.1f\n",
      hosts, tuned / first, first / hosts, tuned / hosts
  }'
  [ "${noop_tuned_changed}" -eq 0 ] || { echo "bench-converge: the no-op run changed ${noop_tuned_changed} task(s)" >&2; exit 1; }
  exit 0
fi
run noop_default ANSIBLE_CONFIG="${out}/defaults.cfg"

awk -v first="${first_s}" -v tuned="${noop_tuned_s}" -v dflt="${noop_default_s}" -v tasks="${noop_tuned_tasks}" 'BEGIN {
  printf "RESULT case=summary noop_to_first_ratio=%.3f default_to_tuned_speedup=%.2f tuned_s_per_task=%.3f default_s_per_task=%.3f\n",
    tuned / first, dflt / tuned, tuned / tasks, dflt / tasks
}'
[ "${noop_tuned_changed}" -eq 0 ] || { echo "bench-converge: the no-op run changed ${noop_tuned_changed} task(s)" >&2; exit 1; }
