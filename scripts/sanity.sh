#!/usr/bin/env bash
# ansible-test sanity on the collection procurement.ops, with the Python of
# the controller's virtualenv. ansible-test builds a virtualenv of its own
# for each test that needs packages (pylint, yamllint, antsibull-changelog
# for the changelog test...) and puts pip into each with a get-pip.py it
# downloads from ci-files.testing.ansible.com; where only package mirrors
# answer, scripts/get_pip_offline.py stands in for that script (see there).
set -euo pipefail
cd "$(dirname "$0")/.."
pip_version="$(python - <<'PY'
import re
from pathlib import Path
import ansible_test
source = Path(ansible_test.__file__).parent / "_internal/python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text())[1])
PY
)"
cache="${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if ! cmp -s scripts/get_pip_offline.py "${cache}" && ! timeout 10 curl -fsSI \
        "https://ci-files.testing.ansible.com/ansible-test/get-pip-${pip_version}.py" >/dev/null 2>&1; then
    mkdir -p "$(dirname "${cache}")"
    cp scripts/get_pip_offline.py "${cache}"
fi
python_version="$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
cd ansible_collections/procurement/ops
# The log keeps what ansible-test and pip print while they build the test
# virtualenvs; the tests run and every problem are shown.
log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
set +e
ansible-test sanity --python "${python_version}" --color no "$@" >"${log}" 2>&1
status=$?
set -e
grep -E -e '^(Running sanity test|ERROR|FATAL|WARNING|A command failed)' "${log}" \
    | grep -v -e "^WARNING: Location '" -e '^WARNING: Using locale "C.UTF-8"' -e '^WARNING: Reviewing previous' || true
echo "sanity: $(grep -c '^Running sanity test' "${log}") test(s), exit status ${status}"
exit "${status}"
