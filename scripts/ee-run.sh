#!/usr/bin/env bash
# `make ee-run`: playbooks/site.yml through ansible-navigator, inside the
# execution environment (make ee), against the sandbox (make sandbox) or the
# inventory in EE_INVENTORY. Settings: ansible-navigator.yml. Extra
# arguments go to ansible-playbook, e.g. scripts/ee-run.sh --check.
set -euo pipefail
cd "$(dirname "$0")/.."
inventory="${EE_INVENTORY:-inventory/sandbox}"
docker image inspect procurement-ee:latest >/dev/null 2>&1 \
    || { echo "ee-run: no procurement-ee image here; build it with: make ee" >&2; exit 1; }
mkdir -p .cache
exec ansible-navigator run playbooks/site.yml -i "${inventory}" \
    --vault-password-file "${EE_VAULT_PASSWORD_FILE:-inventory/sandbox/vault-password.txt}" "$@"
