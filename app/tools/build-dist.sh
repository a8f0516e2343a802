#!/usr/bin/env bash
# Build a release artifact for one target Python: the app's wheel plus a
# wheelhouse of every pinned dependency (manylinux x86_64), installable with
#   pip install --no-index --find-links wheels -r requirements.lock
#   pip install --no-index --find-links wheels --no-deps procurement
#
# Safe to start more than once at a time (scenarios and deploys side by side):
# - builders of one artifact take a lock; the second waits for the first and
#   reuses its result when it was built from the same source;
# - the artifact is built in a private folder and renamed into place, so a
#   finished artifact is never removed or rewritten under a reader;
# - dist/NAME.tar.gz.sha256 and dist/NAME.source record its checksum and the
#   hash of the source it was built from. With PROCUREMENT_ARTIFACT_CACHE set,
#   artifacts are also kept there by source hash and shared between trees.
set -euo pipefail

PYTHON_VERSION="${1:?usage: build-dist.sh PYTHON_VERSION [PYTHON]}"
PY="${2:-.venv/bin/python}"
XY="${PYTHON_VERSION//./}"
cd "$(dirname "$0")/.."
PY="$(command -v "${PY}" || true)"
[ -n "${PY}" ] || { echo "build-dist: no builder Python '${2:-.venv/bin/python}'" >&2; exit 2; }

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)"
NAME="procurement-${VERSION}-py${XY}"

# The target interpreter, for the offline install check at the end. Without
# one here the check cannot run: that is said, and when
# PROCUREMENT_REQUIRE_INSTALL_CHECK=1 (the project's own test runs) the build
# stops before building anything.
TARGET_PY=""
for candidate in "python${PYTHON_VERSION}" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"${PYTHON_VERSION}".*/bin/python"${PYTHON_VERSION}"; do
    if "${candidate}" -c "import sys" >/dev/null 2>&1; then
        TARGET_PY="${candidate}"
        break
    fi
done
if [ -z "${TARGET_PY}" ] && [ "${PROCUREMENT_REQUIRE_INSTALL_CHECK:-0}" = "1" ]; then
    echo "build-dist: python${PYTHON_VERSION} is not installed here, so the offline install of ${NAME} cannot be checked" >&2
    exit 1
fi
TARBALL="dist/${NAME}.tar.gz"
mkdir -p dist

exec 9>"dist/.${NAME}.lock"
if ! flock -n 9; then
    echo "build-dist: another build of ${NAME} is running; waiting for it" >&2
    flock -w 1800 9 || { echo "build-dist: gave up waiting for the lock on ${NAME}" >&2; exit 1; }
fi

# What the artifact is made of: the package's source, its pins, this recipe
# and the target Python. Caches and build output are not part of it.
source_hash() {
    {
        echo "python ${PYTHON_VERSION}"
        find pyproject.toml requirements.lock README.md src tools -type f \
            ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-32
}
SOURCE="$(source_hash)"

current() {  # $1: folder holding NAME.tar.gz, its .sha256 and .source
    [ -f "$1/${NAME}.tar.gz" ] && [ "$(cat "$1/${NAME}.source" 2>/dev/null)" = "${SOURCE}" ] \
        && (cd "$1" && sha256sum --quiet --status -c "${NAME}.tar.gz.sha256" 2>/dev/null)
}

# Publish the three files of $1 into $2: each written under a temporary name
# on the same file system, then renamed over the old one. A reader that has
# the old tarball open keeps reading it.
publish() {
    local from=$1 to=$2 file part
    mkdir -p "${to}"
    for file in "${NAME}.tar.gz" "${NAME}.tar.gz.sha256" "${NAME}.source"; do
        part="$(mktemp "${to}/.${file}.XXXXXX")"
        cp "${from}/${file}" "${part}"
        chmod 0644 "${part}"
        mv -f "${part}" "${to}/${file}"
    done
}

if current dist; then
    echo "build-dist: ${TARBALL} is current (source ${SOURCE})" >&2
    echo "${TARBALL}"
    exit 0
fi
CACHE="${PROCUREMENT_ARTIFACT_CACHE:-}"
[ -z "${CACHE}" ] || mkdir -p "${CACHE}"
if [ -n "${CACHE}" ] && (flock -w 600 8 && current "${CACHE}/${SOURCE}" \
        && publish "${CACHE}/${SOURCE}" dist) 8>"${CACHE}/.${SOURCE}.lock"; then
    echo "build-dist: ${TARBALL} taken from ${CACHE}/${SOURCE} (same source)" >&2
    echo "${TARBALL}"
    exit 0
fi

WORK="$(mktemp -d "dist/.build-${NAME}.XXXXXX")"
WORK="$(cd "${WORK}" && pwd)"
trap 'rm -rf "${WORK}"' EXIT
OUT="${WORK}/${NAME}"
mkdir -p "${OUT}/wheels"

"${PY}" tools/lock_for.py requirements.lock "${PYTHON_VERSION}" "${OUT}/requirements.lock"

# Build from a copy, so that concurrent builds of one tree share no build/ folder.
cp -r pyproject.toml README.md src "${WORK}/"
[ -f LICENSE ] && cp LICENSE "${WORK}/"
"${PY}" -m pip wheel --quiet --no-deps --wheel-dir "${OUT}/wheels" "${WORK}"
rm -rf "${WORK:?}/src" "${WORK}/pyproject.toml" "${WORK}/README.md" "${WORK}/build" "${WORK}/LICENSE"

platforms=()
for tag in manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_28_x86_64 manylinux_2_34_x86_64 manylinux1_x86_64 manylinux2010_x86_64; do
    platforms+=(--platform "${tag}")
done
if ! "${PY}" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
        --python-version "${PYTHON_VERSION}" --implementation cp --abi "cp${XY}" --abi abi3 --abi none \
        "${platforms[@]}" -r "${OUT}/requirements.lock" -d "${OUT}/wheels"; then
    # Some dependency publishes no wheel: build the pure-Python ones locally.
    echo "build-dist: binary download failed; building missing wheels from source" >&2
    "${PY}" -m pip wheel --quiet --no-deps --require-hashes -r "${OUT}/requirements.lock" -w "${OUT}/wheels"
fi

cat > "${OUT}/INSTALL.txt" <<TXT
procurement ${VERSION} for CPython ${PYTHON_VERSION}, Linux x86_64 (manylinux).

  python${PYTHON_VERSION} -m venv /opt/procurement/venv
  /opt/procurement/venv/bin/pip install --no-index --find-links wheels -r requirements.lock
  /opt/procurement/venv/bin/pip install --no-index --find-links wheels --no-deps procurement==${VERSION}
  /opt/procurement/venv/bin/procurement --version
TXT

# Prove the artifact installs offline and runs, with the target interpreter.
if [ -n "${TARGET_PY}" ]; then
    CHECK="${WORK}/check"
    "${TARGET_PY}" -m venv "${CHECK}/venv"
    "${CHECK}/venv/bin/pip" install --quiet --no-index --find-links "${OUT}/wheels" -r "${OUT}/requirements.lock"
    "${CHECK}/venv/bin/pip" install --quiet --no-index --find-links "${OUT}/wheels" --no-deps "procurement==${VERSION}"
    reported="$(cd "${CHECK}" && "${CHECK}/venv/bin/procurement" --version)"
    case "${reported}" in
        *"${VERSION}"*) ;;
        *) echo "build-dist: the installed artifact reports '${reported}', not ${VERSION}" >&2; exit 1 ;;
    esac
    (cd "${CHECK}" && "${CHECK}/venv/bin/python" -c "import config_manager, procurement_api, procurement.cli, procurement.gunicorn_conf")
    rm -rf "${CHECK}"
else
    echo "build-dist: WARNING: python${PYTHON_VERSION} is not installed here; ${NAME} was NOT checked to install offline" >&2
fi

tar -czf "${WORK}/${NAME}.tar.gz" -C "${WORK}" "${NAME}"
(cd "${WORK}" && sha256sum "${NAME}.tar.gz" > "${NAME}.tar.gz.sha256")
echo "${SOURCE}" > "${WORK}/${NAME}.source"
if [ -n "${CACHE}" ]; then
    (flock -w 600 8 && publish "${WORK}" "${CACHE}/${SOURCE}") 8>"${CACHE}/.${SOURCE}.lock"
fi
publish "${WORK}" dist
echo "build-dist: built ${TARBALL} (source ${SOURCE})" >&2
echo "${TARBALL}"
