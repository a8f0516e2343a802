#!/usr/bin/env bash
# The sandbox: local systemd containers that Ansible reaches over SSH on
# ports published on 127.0.0.1, exactly as it reaches real servers.
#
#   scripts/sandbox.sh up        start the hosts and run playbooks/site.yml
#   scripts/sandbox.sh destroy   remove the containers, network and key
set -euo pipefail
cd "$(dirname "$0")/.."

name=procurement-sandbox
inventory=inventory/sandbox
generated=${inventory}/.generated
vault_file=${inventory}/vault-password.txt
image=${SANDBOX_IMAGE:-procurement-systemd:debian12}
ssh_port=${SANDBOX_SSH_PORT:-2222}
https_port=${SANDBOX_HTTPS_PORT:-8443}
http_port=${SANDBOX_HTTP_PORT:-8080}
host=sandbox-aio
container=${name}-aio

say() { printf 'sandbox: %s\n' "$*"; }

start_host() {
  if [ "$(docker inspect -f '{{.State.Running}}' "${container}" 2>/dev/null)" = "true" ]; then
    return 0
  fi
  docker rm -f "${container}" >/dev/null 2>&1 || true
  docker network inspect "${name}" >/dev/null 2>&1 || docker network create "${name}" >/dev/null
  say "starting ${container} from ${image}"
  docker run -d --name "${container}" --hostname "${host}" --network "${name}" \
    --cgroupns host \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_PTRACE \
    --cap-add AUDIT_WRITE --cap-add SYS_CHROOT --cap-add MKNOD \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    -p "127.0.0.1:${ssh_port}:22" -p "127.0.0.1:${https_port}:443" -p "127.0.0.1:${http_port}:80" \
    --label procurement.sandbox=1 \
    "${image}" /lib/systemd/systemd >/dev/null
}

bootstrap_access() {
  # What cloud-init does on a real server: a deploy user with our key and
  # password-less sudo.
  mkdir -p "${generated}"
  chmod 0700 "${generated}"
  [ -f "${generated}/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "procurement-sandbox" -f "${generated}/id_ed25519"
  docker exec "${container}" systemctl is-system-running --wait >/dev/null || true
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
    ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -qq
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
sandbox: SSH                     ssh -i ${generated}/id_ed25519 -p ${ssh_port} deploy@127.0.0.1
sandbox: run again               make sandbox     (remove: make sandbox-destroy)
MSG
}

case "${1:-up}" in
  up)
    shift || true
    scripts/docker-up.sh
    scripts/build-images.sh "${image##*:}"
    start_host
    bootstrap_access
    if [ -n "${SANDBOX_SKIP_CONVERGE:-}" ]; then
      say "hosts are up; converge skipped"
      exit 0
    fi
    converge "$@"
    report
    ;;
  destroy)
    docker ps -aq --filter label=procurement.sandbox=1 | xargs -r docker rm -f >/dev/null
    docker network rm "${name}" >/dev/null 2>&1 || true
    rm -rf "${generated}"
    say "removed"
    ;;
  *)
    echo "usage: $0 up|destroy" >&2
    exit 2
    ;;
esac
