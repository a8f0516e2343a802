#!/usr/bin/env bash
# The release, in one folder: the collection procurement.ops as the tarball
# `ansible-galaxy collection build` makes, the app's artifacts (one per
# target Python, built before by `make artifacts`) and SHA256SUMS over them.
#   scripts/dist.sh [OUT]      (default: dist/)
# The collection and the app carry one version (scripts/release.py bumps
# both); a tree where they differ is not released.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-dist}"
COLLECTION=ansible_collections/procurement/ops
PYTHONS="${ARTIFACT_PYTHONS:-3.11 3.13}"

version="$(python3 scripts/release.py --check)"
mkdir -p "${OUT}"
# A partial release is never left behind: build beside, then replace.
work="$(mktemp -d "${OUT}/.dist.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
ansible-galaxy collection build "${COLLECTION}" --output-path "${work}" >/dev/null
for python in ${PYTHONS}; do
    artifact="app/dist/procurement-${version}-py${python//./}.tar.gz"
    [ -f "${artifact}" ] || { echo "dist: no ${artifact}; run make artifacts first" >&2; exit 1; }
    (cd app/dist && sha256sum --quiet -c "$(basename "${artifact}").sha256") \
        || { echo "dist: ${artifact} does not match its .sha256" >&2; exit 1; }
    cp "${artifact}" "${work}/"
done
(cd "${work}" && sha256sum -- *.tar.gz > SHA256SUMS && sha256sum --quiet -c SHA256SUMS)
find "${OUT}" -maxdepth 1 -type f \( -name '*.tar.gz' -o -name SHA256SUMS \) -delete
mv "${work}"/* "${OUT}/"
echo "dist: ${OUT}/ holds procurement.ops ${version} and the app's artifacts for Python ${PYTHONS// /, }:"
sed 's/^/  /' "${OUT}/SHA256SUMS"
