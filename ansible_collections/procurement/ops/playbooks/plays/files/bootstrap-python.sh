# shellcheck shell=sh
# Run over raw SSH before Ansible's first module on a host: ansible-core
# manages hosts with Python 3.8 or newer. Every supported release has one
# except EL 8, whose platform Python is 3.6; there python3.11 (AppStream) is
# installed. Prints "python: <path>" for the interpreter found, or
# "python: installed <path>" when it had to install one.
for candidate in python3 python3.13 python3.12 python3.11 python3.10 python3.9 python3.8; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 8))' >/dev/null 2>&1; then
        echo "python: $(command -v "$candidate")"
        exit 0
    fi
done
if command -v dnf >/dev/null 2>&1; then
    dnf -y -q install python3.11 >&2 || exit 1
    echo "python: installed $(command -v python3.11)"
    exit 0
fi
echo "bootstrap: this host has no Python 3.8 or newer, and no dnf to install python3.11" >&2
exit 1
