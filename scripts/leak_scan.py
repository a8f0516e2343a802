#!/usr/bin/env python3
"""Find where a host keeps or shows secret values, for scripts/audit.py's leak gate.

Runs ON the audited host, as root, with nothing but python3's standard
library (scripts/audit.py ships it there). It searches:

- regular files under the given roots, opening gzip files and tar archives
  (the backups hold the service's .env);
- the systemd journal, every unit;
- every process's command line (world-readable) and environment (readable by
  its owner and root).

It prints one JSON object naming every place a secret was found, with the
file's or process's mode and owner, and never the value itself: the caller
judges which places are allowed.

    python3 leak_scan.py PATTERNS ROOT...
    python3 leak_scan.py --watch STOPFILE PATTERNS

PATTERNS is a file of ``name<TAB>value`` lines. With --watch it reads every
process's command line and environment five times a second until STOPFILE
exists (a converge runs meanwhile: its short-lived commands are the ones
that would put a password on a command line), then reports what it saw.
"""

import grp
import gzip
import io
import json
import os
import pwd
import stat
import subprocess
import sys
import tarfile
import time

MAX_BYTES = 256 * 1024 * 1024
SKIPPED = ("/proc", "/sys", "/dev")


def load(path):
    secrets = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            name, _, value = line.rstrip("\n").partition("\t")
            if value:
                secrets[name] = value.encode()
    return secrets


def names_in(data, secrets):
    return sorted(name for name, value in secrets.items() if value in data)


def owner(uid, gid):
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return user, group


def archive_members(path, data):
    """The searchable contents of a compressed file or archive: (member name, bytes) pairs."""
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if tarfile.is_tarfile(io.BytesIO(data)):
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                for member in archive:
                    if member.isfile():
                        yield member.name, archive.extractfile(member).read()
            return
    except (OSError, EOFError, tarfile.TarError):
        return
    yield "", data


def scan_files(roots, secrets, skip, report):
    scanned = 0
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.join(folder, d) not in SKIPPED]
            for name in files:
                path = os.path.join(folder, name)
                if path in skip:
                    continue
                try:
                    info = os.lstat(path)
                    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
                        continue
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                scanned += 1
                user, group = owner(info.st_uid, info.st_gid)
                place = {"mode": f"{stat.S_IMODE(info.st_mode):04o}", "owner": user, "group": group}
                if path.endswith((".gz", ".tgz", ".tar")):
                    for member, content in archive_members(path, data):
                        found = names_in(content, secrets)
                        if found:
                            where = path + ("!" + member if member else "")
                            report["hits"].append(dict(place, kind="archive", where=where, secrets=found))
                    continue
                found = names_in(data, secrets)
                if found:
                    report["hits"].append(dict(place, kind="file", where=path, secrets=found))
    report["files_scanned"] = scanned


def scan_journal(secrets, report):
    run = subprocess.run(
        ["journalctl", "--no-pager", "-o", "json", "--output-fields=MESSAGE,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    lines = 0
    for line in run.stdout.splitlines():
        lines += 1
        found = names_in(line, secrets)
        if found:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {}
            unit = entry.get("_SYSTEMD_UNIT") or entry.get("SYSLOG_IDENTIFIER") or "?"
            report["hits"].append({"kind": "journal", "where": str(unit), "secrets": found})
    report["journal_entries"] = lines


def scan_processes(secrets, report):
    processes = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for part in ("cmdline", "environ"):
            path = f"/proc/{pid}/{part}"
            try:
                info = os.stat(path)
                with open(path, "rb") as handle:
                    data = handle.read()
                with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
                    command = handle.read().strip()
            except OSError:
                continue
            processes += part == "cmdline"
            found = names_in(data, secrets)
            if found:
                user, group = owner(info.st_uid, info.st_gid)
                where = f"{part} (pid {pid}, {command})"
                place = {"mode": f"{stat.S_IMODE(info.st_mode):04o}", "owner": user, "group": group}
                report["hits"].append(dict(place, kind=part, where=where, secrets=found))
    report["processes_scanned"] = processes


def watch(stopfile, secrets):
    report = {"secrets": sorted(secrets), "hits": [], "rounds": 0}
    seen = set()
    while not os.path.exists(stopfile):
        round_report = {"hits": []}
        scan_processes(secrets, round_report)
        report["rounds"] += 1
        for hit in round_report["hits"]:
            # One hit per kind of place: the same command seen twice is one leak.
            key = (hit["kind"], hit["where"].split(", ", 1)[-1], hit["owner"], tuple(hit["secrets"]))
            if key not in seen:
                seen.add(key)
                report["hits"].append(hit)
        time.sleep(0.2)
    return report


def main(argv):
    if argv[1] == "--watch":
        json.dump(watch(argv[2], load(argv[3])), sys.stdout)
        return 0
    patterns, roots = argv[1], argv[2:]
    secrets = load(patterns)
    report = {"secrets": sorted(secrets), "hits": []}
    skip = {os.path.abspath(patterns), os.path.abspath(__file__)}
    scan_processes(secrets, report)
    scan_journal(secrets, report)
    scan_files([r for r in roots if os.path.isdir(r)], secrets, skip, report)
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
