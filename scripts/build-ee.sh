#!/usr/bin/env bash
# `make ee`: the execution environment, procurement-ee:<version> (and
# :latest), built by ansible-builder from execution-environment.yml.
#
# Where no image registry can be reached, its base is the project's own: the
# Debian 12 image of scripts/build-images.sh with python3-pip and an SSH
# client added (procurement-ee-base:debian12). The container build cannot
# reach the package index over TLS, so every Python package comes from a
# wheelhouse downloaded here on the controller, pinned by
# requirements/controller.txt, and the collection from the release's tarball.
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(python3 scripts/release.py --check)"
base=procurement-ee-base:debian12
work=.cache/ee
say() { printf 'build-ee: %s\n' "$*"; }

# The base: the test hosts' Debian 12 image (make images) plus what an
# execution environment runs (pip for the build, ssh for the hosts).
recipe="$(docker image inspect -f '{{.Id}}' procurement-systemd:debian12) python3-pip openssh-client rsync"
recipe_id="$(printf '%s' "${recipe}" | sha256sum | cut -c1-16)"
if [ "$(docker image inspect -f '{{index .Config.Labels "procurement.ee-base.recipe"}}' "${base}" 2>/dev/null)" != "${recipe_id}" ]; then
    say "building ${base}"
    container="procurement-ee-base-build-$$"
    docker rm -f "${container}" >/dev/null 2>&1 || true
    docker run --name "${container}" procurement-systemd:debian12 /bin/sh -c \
        'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip openssh-client rsync >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*'
    docker commit --change 'CMD ["/bin/bash"]' --change "LABEL procurement.ee-base.recipe=${recipe_id}" \
        "${container}" "${base}" >/dev/null
    docker rm "${container}" >/dev/null
fi

# The collection from the release's tarball, and the wheelhouse: the EE's
# packages and what ansible-builder itself installs in the build (bindep,
# PyYAML, packaging, dumb-init), at the controller's pinned versions.
mkdir -p "${work}"
rm -rf "${work}/dist" "${work}/wheels"
ansible-galaxy collection build ansible_collections/procurement/ops --output-path "${work}/dist" >/dev/null
cp "${work}/dist/procurement-ops-${version}.tar.gz" "${work}/procurement-ops.tar.gz"
say "downloading the wheelhouse"
pip download -q --disable-pip-version-check --only-binary=:all: -d "${work}/wheels" \
    -c requirements/controller.txt -r requirements/ee.txt bindep PyYAML packaging dumb-init==1.2.5.post1

say "building procurement-ee:${version}"
ansible-builder build -f execution-environment.yml --context "${work}/context" \
    --container-runtime docker -t "procurement-ee:${version}" -t procurement-ee:latest -v 1
say "built procurement-ee:${version}: $(docker run --rm "procurement-ee:${version}" ansible-galaxy collection list procurement.ops 2>/dev/null | grep -E '^procurement\.ops' || echo 'procurement.ops missing')"
