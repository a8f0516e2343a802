#!/usr/bin/env bash
# The sandbox: local systemd containers that Ansible reaches over SSH on
# ports published on 127.0.0.1, exactly as it reaches real servers.
#
#   scripts/sandbox.sh up        start the hosts and run playbooks/site.yml
#   scripts/sandbox.sh destroy   remove the containers, network and key
#
# SANDBOX picks the topology: "aio" (default) is one all-in-one host
# (inventory/sandbox); "cluster" is six hosts, one tier each, with a
# two-member Patroni cluster and two app nodes behind the load balancer
# (inventory/sandbox-cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

topology=${SANDBOX:-aio}
image=${SANDBOX_IMAGE:-procurement-systemd:debian12}
case "${topology}" in
  aio)
    name=procurement-sandbox
    inventory=inventory/sandbox
    # host  SSH port  published HTTPS and HTTP (web hosts only)
    hosts=("aio ${SANDBOX_SSH_PORT:-2222} ${SANDBOX_HTTPS_PORT:-8443} ${SANDBOX_HTTP_PORT:-8080}")
    ;;
  cluster)
    name=procurement-cluster
    inventory=inventory/sandbox-cluster
    hosts=("web1 2231 ${SANDBOX_HTTPS_PORT:-8444} ${SANDBOX_HTTP_PORT:-8081}" "app1 2232" "app2 2233"
           "db1 2234" "db2 2235" "ops1 2236")
    ;;
  *)
    echo "SANDBOX must be aio or cluster, not ${topology}" >&2
    exit 2
    ;;
esac
generated=${inventory}/.generated
vault_file=inventory/sandbox/vault-password.txt
read -r _ first_ssh_port https_port _ <<<"${hosts[0]}"

say() { printf 'sandbox: %s\n' "$*"; }

start_host() {
  local short=$1 ssh_port=$2 https=${3:-} http=${4:-}
  local container=${name}-${short} ports=(-p "127.0.0.1:${ssh_port}:22")
  [ -z "${https}" ] || ports+=(-p "127.0.0.1:${https}:443" -p "127.0.0.1:${http}:80")
  if [ "$(docker inspect -f '{{.State.Running}}' "${container}" 2>/dev/null)" = "true" ]; then
    return 0
  fi
  docker rm -f "${container}" >/dev/null 2>&1 || true
  docker network inspect "${name}" >/dev/null 2>&1 || docker network create "${name}" >/dev/null
  say "starting ${container} from ${image}"
  docker run -d --name "${container}" --hostname "${name#procurement-}-${short}" --network "${name}" \
    --cgroupns host \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_PTRACE \
    --cap-add AUDIT_WRITE --cap-add SYS_CHROOT --cap-add MKNOD \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    "${ports[@]}" \
    --label procurement.sandbox=1 --label "procurement.sandbox.topology=${topology}" \
    "${image}" /lib/systemd/systemd >/dev/null
}

bootstrap_access() {
  # What cloud-init does on a real server: a deploy user with our key and
  # password-less sudo.
  local container=${name}-$1 ssh_port=$2
  mkdir -p "${generated}"
  chmod 0700 "${generated}"
  [ -f "${generated}/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "${name}" -f "${generated}/id_ed25519"
  # Until systemd answers on its bus and has finished booting: before that,
  # systemctl fails at once, and apt's signature checks can fail as well.
  local state=""
  for _ in $(seq 60); do
    state=$(docker exec "${container}" systemctl is-system-running --wait 2>/dev/null || true)
    case "${state}" in running | degraded) break ;; esac
    sleep 1
  done
  docker exec -i "${container}" bash -euo pipefail -c '
    id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy
    install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
    cat > /home/deploy/.ssh/authorized_keys
    chown deploy:deploy /home/deploy/.ssh/authorized_keys
    chmod 0600 /home/deploy/.ssh/authorized_keys
    echo "deploy ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/deploy
    chmod 0440 /etc/sudoers.d/deploy
    # A provisioned server has a package index; the image ships none, and its
    # empty lists directory is young enough for apt to call the cache valid.
    ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -qq || { sleep 5; apt-get update -qq; }
  ' <"${generated}/id_ed25519.pub"
  for _ in $(seq 30); do
    if ssh -q -i "${generated}/id_ed25519" -p "${ssh_port}" -o BatchMode=yes \
         -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null deploy@127.0.0.1 true 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  say "SSH on 127.0.0.1:${ssh_port} did not answer" >&2
  return 1
}

converge() {
  local log=${generated}/site.log
  say "running playbooks/site.yml (log: ${log})"
  ANSIBLE_NOCOLOR=1 ansible-playbook -i "${inventory}" --vault-password-file "${vault_file}" \
    playbooks/site.yml "$@" | tee "${log}"
  changed=$(awk '/^[^ ].*: ok=/ { for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) { split($i, a, "="); s += a[2] } } END { print s + 0 }' "${log}")
}

report() {
  local token
  token=$(ansible-vault view --vault-password-file "${vault_file}" "${inventory}/group_vars/all/vault.yml" \
          | awk '/^vault_app_admin_token:/ { print $2 }')
  echo
  if [ "${changed}" -eq 0 ]; then
    say "already converged: the run changed nothing"
  else
    say "converged: ${changed} change(s)"
  fi
  cat <<MSG
sandbox: the service answers at  https://127.0.0.1:${https_port}/  (self-signed certificate)
sandbox: admin API token         ${token}
sandbox: try                     curl -k -H "Authorization: Bearer ${token}" https://127.0.0.1:${https_port}/api/v1/suppliers
sandbox: SSH                     ssh -i ${generated}/id_ed25519 -p ${first_ssh_port} deploy@127.0.0.1
MSG
  if [ "${topology}" = cluster ]; then
    local entry short port
    for entry in "${hosts[@]:1}"; do
      read -r short port _ <<<"${entry}"
      printf 'sandbox: SSH to %-13s ssh -i %s -p %s deploy@127.0.0.1\n' "${short}" "${generated}/id_ed25519" "${port}"
    done
    echo "sandbox: run again               make sandbox SANDBOX=cluster     (remove: make sandbox-destroy SANDBOX=cluster)"
  else
    echo "sandbox: run again               make sandbox     (remove: make sandbox-destroy)"
  fi
}

case "${1:-up}" in
  up)
    shift || true
    scripts/docker-up.sh
    scripts/build-images.sh "${image##*:}"
    for entry in "${hosts[@]}"; do
      # shellcheck disable=SC2086  # the entry is "name ssh-port [https-port http-port]"
      start_host ${entry}
    done
    for entry in "${hosts[@]}"; do
      # shellcheck disable=SC2086
      bootstrap_access ${entry}
    done
    if [ -n "${SANDBOX_SKIP_CONVERGE:-}" ]; then
      say "hosts are up; converge skipped"
      exit 0
    fi
    converge "$@"
    report
    ;;
  destroy)
    docker ps -aq --filter "label=procurement.sandbox.topology=${topology}" | xargs -r docker rm -f >/dev/null
    # Containers started before the topology label existed belong to aio.
    if [ "${topology}" = aio ]; then
      docker ps -aq --filter "name=^${name}-aio$" | xargs -r docker rm -f >/dev/null
    fi
    docker network rm "${name}" >/dev/null 2>&1 || true
    rm -rf "${generated}"
    say "removed"
    ;;
  *)
    echo "usage: $0 up|destroy" >&2
    exit 2
    ;;
esac
