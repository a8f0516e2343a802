#!/usr/bin/env bash
# `make ee-run`: playbooks/site.yml through ansible-navigator, inside the
# execution environment (make ee), against the sandbox (make sandbox) or the
# inventory in EE_INVENTORY, with the app's artifacts of the release in
# dist/ (make dist). Settings: ansible-navigator.yml. Extra arguments go to
# ansible-playbook, e.g. scripts/ee-run.sh --check.
set -euo pipefail
cd "$(dirname "$0")/.."
inventory="${EE_INVENTORY:-inventory/sandbox}"
docker image inspect procurement-ee:latest >/dev/null 2>&1 \
    || { echo "ee-run: no procurement-ee image here; build it with: make ee" >&2; exit 1; }
[ -f dist/SHA256SUMS ] || { echo "ee-run: no release in dist/; build it with: make dist" >&2; exit 1; }
mkdir -p .cache
# ansible-navigator mounts the repository (the playbook's project) at the
# same path inside: the inventory, its keys and the release's artifacts.
exec ansible-navigator run playbooks/site.yml --mode stdout -i "${inventory}" \
    --vault-password-file "${EE_VAULT_PASSWORD_FILE:-inventory/sandbox/vault-password.txt}" \
    -e "app_artifact_dir=$(pwd)/dist" "$@"
