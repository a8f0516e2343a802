#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; start one when none does.
# Nothing starts dockerd on a machine without systemd as PID 1, so the harness
# does it and waits for the socket.
set -euo pipefail

log_file=${DOCKERD_LOG:-/var/log/dockerd.log}
timeout=${DOCKERD_TIMEOUT:-60}

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-up: dockerd is not installed; run 'make deps' (apt-get install docker.io)" >&2
  exit 1
fi

echo "docker-up: starting dockerd (log: ${log_file})"
nohup dockerd >"${log_file}" 2>&1 &

for _ in $(seq "${timeout}"); do
  if docker info >/dev/null 2>&1; then
    echo "docker-up: engine ready"
    exit 0
  fi
  sleep 1
done

echo "docker-up: dockerd did not answer within ${timeout}s; last lines of ${log_file}:" >&2
tail -n 20 "${log_file}" >&2
exit 1
