#!/usr/bin/env bash
# Build a release artifact for one target Python: the app's wheel plus a
# wheelhouse of every pinned dependency (manylinux x86_64), installable with
#   pip install --no-index --find-links wheels -r requirements.lock
#   pip install --no-index --find-links wheels --no-deps procurement
set -euo pipefail

PYTHON_VERSION="${1:?usage: build-dist.sh PYTHON_VERSION [PYTHON]}"
PY="${2:-.venv/bin/python}"
XY="${PYTHON_VERSION//./}"
cd "$(dirname "$0")/.."

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)"
NAME="procurement-${VERSION}-py${XY}"
OUT="dist/${NAME}"
rm -rf "${OUT}" "dist/${NAME}.tar.gz"
mkdir -p "${OUT}/wheels"

"${PY}" tools/lock_for.py requirements.lock "${PYTHON_VERSION}" "${OUT}/requirements.lock"

"${PY}" -m pip wheel --quiet --no-deps --wheel-dir "${OUT}/wheels" .

platforms=()
for tag in manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_28_x86_64 manylinux_2_34_x86_64 manylinux1_x86_64 manylinux2010_x86_64; do
    platforms+=(--platform "${tag}")
done
if ! "${PY}" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
        --python-version "${PYTHON_VERSION}" --implementation cp --abi "cp${XY}" --abi abi3 --abi none \
        "${platforms[@]}" -r "${OUT}/requirements.lock" -d "${OUT}/wheels"; then
    # Some dependency publishes no wheel: build the pure-Python ones locally.
    echo "binary download failed; building missing wheels from source" >&2
    "${PY}" -m pip wheel --quiet --no-deps --require-hashes -r "${OUT}/requirements.lock" -w "${OUT}/wheels"
fi

cat > "${OUT}/INSTALL.txt" <<TXT
procurement ${VERSION} for CPython ${PYTHON_VERSION}, Linux x86_64 (manylinux).

  python${PYTHON_VERSION} -m venv /opt/procurement/venv
  /opt/procurement/venv/bin/pip install --no-index --find-links wheels -r requirements.lock
  /opt/procurement/venv/bin/pip install --no-index --find-links wheels --no-deps procurement==${VERSION}
  /opt/procurement/venv/bin/procurement --version
TXT

# Prove the artifact installs offline when that interpreter is available here.
TARGET_PY=""
for candidate in "python${PYTHON_VERSION}" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"${PYTHON_VERSION}".*/bin/python"${PYTHON_VERSION}"; do
    if "${candidate}" -c "import sys" >/dev/null 2>&1; then
        TARGET_PY="${candidate}"
        break
    fi
done
if [ -n "${TARGET_PY}" ]; then
    CHECK="$(mktemp -d)"
    "${TARGET_PY}" -m venv "${CHECK}/venv"
    "${CHECK}/venv/bin/pip" install --quiet --no-index --find-links "${OUT}/wheels" -r "${OUT}/requirements.lock"
    "${CHECK}/venv/bin/pip" install --quiet --no-index --find-links "${OUT}/wheels" --no-deps "procurement==${VERSION}"
    (cd "${CHECK}" && "${CHECK}/venv/bin/procurement" --version >&2 \
        && "${CHECK}/venv/bin/python" -c "import config_manager, procurement_api, procurement.wsgi" 2>/dev/null \
        || "${CHECK}/venv/bin/python" -c "import config_manager, procurement_api, procurement.gunicorn_conf")
    rm -rf "${CHECK}"
else
    echo "python${PYTHON_VERSION} not found here; skipped the offline install check" >&2
fi

tar -czf "dist/${NAME}.tar.gz" -C dist "${NAME}"
echo "dist/${NAME}.tar.gz"
