"""dev-sec linux-baseline, as our own testinfra tests: accounts, files, mounts, packages and kernel settings.

Kernel settings (sysctl-*) belong to the kernel, and inside a container the kernel is the machine's, not
the host's. On a real host each test reads the live value; in a container (``systemd-detect-virt
--container`` succeeds) it reads the value the host would set at boot: the last assignment in the files
``systemd-sysctl`` loads, which is what the hardening role writes there without applying it.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re

import pytest

pytestmark = pytest.mark.baseline("linux-baseline")

# Directories systemd-sysctl reads, highest precedence first: a file name found in an earlier
# directory hides the same name in a later one; the surviving files apply in name order.
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")

# Programs that must not carry the set-user-ID or set-group-ID bit (dev-sec's default list):
# r-commands, host-based SSH authentication, dial-up and interface helpers, mail lock helpers
# and a few tools that need no privilege escalation.
SUID_DENYLIST = (
    "/usr/bin/rcp",
    "/usr/bin/rlogin",
    "/usr/bin/rsh",
    "/usr/libexec/openssh/ssh-keysign",
    "/usr/lib/openssh/ssh-keysign",
    "/sbin/netreport",
    "/usr/sbin/usernetctl",
    "/usr/sbin/userisdnctl",
    "/usr/sbin/pppd",
    "/usr/bin/lockfile",
    "/usr/bin/mail-lock",
    "/usr/bin/mail-unlock",
    "/usr/bin/mail-touchlock",
    "/usr/bin/dotlockfile",
    "/usr/bin/arping",
    "/usr/sbin/arping",
    "/usr/sbin/uuidd",
    "/usr/bin/mtr",
    "/usr/lib/evolution/camel-lock-helper-1.2",
    "/usr/lib/pt_chown",
    "/usr/lib/eject/dmcrypt-get-device",
    "/usr/lib/mc/cons.saver",
)
CRON_PATHS = (
    "/etc/crontab",
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
    "/etc/cron.d",
)
ACCOUNT_FILES = ("/etc/shadow", "/etc/passwd", "/etc/login.defs", "/etc/hosts.equiv", "/var/log")

# Mount points that, where they are separate mounts, must carry each option (os-14, os-15, os-16).
MOUNT_OPTIONS = {
    "os-14": ("noexec", ("/boot", "/dev", "/dev/shm", "/tmp", "/var/log", "/var/log/audit", "/var/tmp")),
    "os-15": (
        "nosuid",
        ("/boot", "/dev", "/dev/shm", "/home", "/run", "/tmp", "/var", "/var/log", "/var/log/audit", "/var/tmp"),
    ),
    "os-16": (
        "nodev",
        ("/boot", "/dev/shm", "/home", "/run", "/tmp", "/var", "/var/log", "/var/log/audit", "/var/tmp"),
    ),
}

# Filesystems no server of this bundle mounts; each must be kept from loading (os-10).
UNUSED_FILESYSTEMS = ("cramfs", "freevxfs", "jffs2", "hfs", "hfsplus", "squashfs", "udf")

# Each control's kernel settings and the values that pass. The hosts route nothing, so both
# forwarding controls apply; modules stay loadable (dev-sec's default expects 0).
SYSCTL_CONTROLS = {
    "sysctl-01": {"net.ipv4.ip_forward": {0}, "net.ipv4.conf.all.forwarding": {0}},
    "sysctl-02": {"net.ipv4.conf.all.rp_filter": {1}, "net.ipv4.conf.default.rp_filter": {1}},
    "sysctl-03": {"net.ipv4.icmp_ignore_bogus_error_responses": {1}},
    "sysctl-04": {"net.ipv4.icmp_echo_ignore_broadcasts": {1}},
    "sysctl-05": {"net.ipv4.icmp_ratelimit": {100}},
    "sysctl-06": {"net.ipv4.icmp_ratemask": {88089}},
    "sysctl-07": {"net.ipv4.tcp_timestamps": {0}},
    "sysctl-08": {"net.ipv4.conf.all.arp_ignore": {1}},
    "sysctl-09": {"net.ipv4.conf.all.arp_announce": {2}},
    "sysctl-10": {"net.ipv4.tcp_rfc1337": {1}},
    "sysctl-11": {"net.ipv4.tcp_syncookies": {1}},
    "sysctl-12": {"net.ipv4.conf.all.shared_media": {1}, "net.ipv4.conf.default.shared_media": {1}},
    "sysctl-13": {
        "net.ipv4.conf.all.accept_source_route": {0},
        "net.ipv4.conf.default.accept_source_route": {0},
        "net.ipv6.conf.all.accept_source_route": {0},
        "net.ipv6.conf.default.accept_source_route": {0},
    },
    "sysctl-14": {"net.ipv4.conf.all.accept_redirects": {0}, "net.ipv4.conf.default.accept_redirects": {0}},
    "sysctl-15": {"net.ipv4.conf.all.secure_redirects": {0}, "net.ipv4.conf.default.secure_redirects": {0}},
    "sysctl-16": {"net.ipv4.conf.all.send_redirects": {0}, "net.ipv4.conf.default.send_redirects": {0}},
    "sysctl-17": {"net.ipv4.conf.all.log_martians": {1}, "net.ipv4.conf.default.log_martians": {1}},
    "sysctl-19": {"net.ipv6.conf.all.forwarding": {0}},
    "sysctl-20": {"net.ipv6.conf.all.accept_redirects": {0}, "net.ipv6.conf.default.accept_redirects": {0}},
    "sysctl-21": {"net.ipv6.conf.default.router_solicitations": {0}},
    "sysctl-22": {"net.ipv6.conf.default.accept_ra_rtr_pref": {0}},
    "sysctl-23": {"net.ipv6.conf.default.accept_ra_pinfo": {0}},
    "sysctl-24": {"net.ipv6.conf.default.accept_ra_defrtr": {0}},
    "sysctl-25": {"net.ipv6.conf.all.accept_ra": {0}, "net.ipv6.conf.default.accept_ra": {0}},
    "sysctl-26": {"net.ipv6.conf.default.autoconf": {0}},
    "sysctl-27": {"net.ipv6.conf.default.dad_transmits": {0}},
    "sysctl-28": {"net.ipv6.conf.default.max_addresses": {1}},
    "sysctl-29": {"kernel.modules_disabled": {0}},
    "sysctl-30": {"kernel.sysrq": {0}},
    "sysctl-31a": {"fs.suid_dumpable": {0, 2}},
    "sysctl-32": {"kernel.randomize_va_space": {2}},
    "sysctl-34": {
        "fs.protected_fifos": {1, 2},
        "fs.protected_hardlinks": {1},
        "fs.protected_regular": {2},
        "fs.protected_symlinks": {1},
    },
}
SYSCTL_KEYS = sorted({key for keys in SYSCTL_CONTROLS.values() for key in keys} | {"kernel.core_pattern"})


# ---------------------------------------------------------------- what the host is


@pytest.fixture(scope="module")
def in_container(host) -> bool:
    return host.run("systemd-detect-virt --container").rc == 0


@pytest.fixture(scope="module")
def os_family(host) -> str:
    """debian or redhat, from /etc/os-release's ID and ID_LIKE."""
    release = host.file("/etc/os-release").content_string
    ids = " ".join(re.findall(r'^(?:ID|ID_LIKE)="?([^"\n]*)"?$', release, re.M))
    if re.search(r"\b(rhel|centos|fedora|rocky|almalinux)\b", ids):
        return "redhat"
    if re.search(r"\b(debian|ubuntu)\b", ids):
        return "debian"
    return ids


def parse_stat(output: str) -> dict[str, dict]:
    stats = {}
    for line in output.splitlines():
        path, user, group, mode, kind = line.split("|")
        stats[path] = {"user": user, "group": group, "mode": int(mode, 8), "kind": kind}
    return stats


@pytest.fixture(scope="module")
def stats(host) -> dict[str, dict]:
    """Owner, group, mode and type of every path the os-* controls look at, in one round trip; a missing path is absent."""
    paths = ACCOUNT_FILES + CRON_PATHS + SUID_DENYLIST
    out = host.run("stat -c '%n|%U|%G|%a|%F' " + " ".join(paths) + " 2>/dev/null").stdout
    return parse_stat(out)


@pytest.fixture(scope="module")
def login_defs(host) -> dict[str, str]:
    settings = {}
    for line in host.file("/etc/login.defs").content_string.splitlines():
        words = line.split(None, 1)
        if words and not words[0].startswith("#"):
            settings[words[0]] = words[1].strip() if len(words) > 1 else ""
    return settings


@pytest.fixture(scope="module")
def mounts(host) -> dict[str, set[str]]:
    """Mount point -> its options, for every mount (the last mount on a point is the one in force)."""
    table = {}
    for line in host.run("findmnt -rn -o TARGET,OPTIONS").stdout.splitlines():
        target, _, options = line.partition(" ")
        table[target.replace("\\x20", " ")] = set(options.split(","))
    return table


def effective_sysctl_files(listing: str) -> list[tuple[str, list[str]]]:
    """The files systemd-sysctl would apply, in order, with their lines, from ``grep -H`` output."""
    contents: dict[str, list[str]] = {}
    for line in listing.splitlines():
        path, _, text = line.partition(":")
        contents.setdefault(path, []).append(text)
    chosen: dict[str, str] = {}
    for directory in SYSCTL_DIRS:
        for path in contents:
            if posixpath.dirname(path) == directory:
                chosen.setdefault(posixpath.basename(path), path)
    ordered = [chosen[name] for name in sorted(chosen)]
    if "/etc/sysctl.conf" in contents:
        ordered.append("/etc/sysctl.conf")
    return [(path, contents[path]) for path in ordered]


def configured_sysctl(files: list[tuple[str, list[str]]], keys: list[str]) -> dict[str, str]:
    """The value each key ends up with after the files apply in order (globs like net.ipv4.conf.*.x included)."""
    values: dict[str, str] = {}
    for _, lines in files:
        for line in lines:
            line = line.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            key, _, value = line.partition("=")
            key = key.strip().lstrip("-").replace("/", ".")
            for wanted in keys:
                if wanted == key or ("*" in key and fnmatch.fnmatchcase(wanted, key)):
                    values[wanted] = value.strip()
    return values


@pytest.fixture(scope="module")
def kernel(host, in_container) -> dict:
    """Each checked key's value: live on a real host, as configured for boot in a container."""
    if not in_container:
        out = host.run("sysctl -e " + " ".join(SYSCTL_KEYS)).stdout
        values = {}
        for line in out.splitlines():
            key, _, value = line.partition(" = ")
            values[key.strip()] = value.strip()
        return {"source": "the running kernel", "values": values}
    files = " ".join(f"{d}/*.conf" for d in SYSCTL_DIRS) + " /etc/sysctl.conf"
    listing = host.run(f"grep -H '' {files} 2>/dev/null").stdout
    values = configured_sysctl(effective_sysctl_files(listing), SYSCTL_KEYS)
    return {"source": "the files sysctl loads at boot (a container's kernel is the machine's)", "values": values}


def as_int(value: str | None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


# ---------------------------------------------------------------- os-*


@pytest.mark.control("os-01")
def test_no_hosts_equiv(stats):
    """os-01: /etc/hosts.equiv, which trusts whole hosts' users without a password, does not exist."""
    assert "/etc/hosts.equiv" not in stats


@pytest.mark.control("os-02")
def test_shadow_owner_and_mode(stats, os_family):
    """os-02: /etc/shadow is a root-owned file of the distribution's shadow group, never executable nor
    readable by others; owner read-write (group-readable for the shadow group) on Debian, no bits at all on EL."""
    shadow = stats.get("/etc/shadow")
    assert shadow is not None and shadow["kind"] == "regular file"
    assert shadow["user"] == "root"
    mode = shadow["mode"]
    assert mode & 0o111 == 0 and mode & 0o004 == 0, oct(mode)
    if os_family == "redhat":
        assert shadow["group"] == "root"
        assert mode & 0o600 == 0 and mode & 0o040 == 0, oct(mode)
    else:
        assert shadow["group"] == "shadow"
        assert mode & 0o600 == 0o600 and mode & 0o040, oct(mode)


@pytest.mark.control("os-03")
def test_passwd_owner_and_mode(stats):
    """os-03: /etc/passwd is root:root, readable by all, writable by root only, executable by nobody."""
    passwd = stats.get("/etc/passwd")
    assert passwd is not None and passwd["kind"] == "regular file"
    assert (passwd["user"], passwd["group"]) == ("root", "root")
    assert passwd["mode"] & 0o133 == 0 and passwd["mode"] & 0o644 == 0o644, oct(passwd["mode"])


@pytest.mark.control("os-03b")
def test_passwd_holds_no_password_hashes(host):
    """os-03b: every account's password field in /etc/passwd is 'x' or '*': hashes live in /etc/shadow."""
    fields = {
        line.split(":")[0]: line.split(":")[1]
        for line in host.file("/etc/passwd").content_string.splitlines()
        if line.count(":") >= 2
    }
    assert {user: field for user, field in fields.items() if field not in ("x", "*")} == {}


@pytest.mark.control("os-04")
def test_path_has_no_current_directory(host):
    """os-04: the PATH a session gets holds neither '.' nor an empty entry (both mean the current directory)."""
    path = host.run('printf %s "$PATH"').stdout
    entries = path.split(":")
    assert "" not in entries and "." not in entries, path


@pytest.mark.control("os-05")
def test_login_defs_owner_and_mode(stats):
    """os-05: /etc/login.defs is root:root, readable by everyone and executable by nobody."""
    defs = stats.get("/etc/login.defs")
    assert defs is not None and defs["kind"] == "regular file"
    assert (defs["user"], defs["group"]) == ("root", "root")
    assert defs["mode"] & 0o111 == 0 and defs["mode"] & 0o444 == 0o444, oct(defs["mode"])


@pytest.mark.control("os-05")
def test_login_defs_settings(login_defs, os_family):
    """os-05: login.defs gives root and users a PATH without writable or relative directories, a umask of
    027 (077 on EL), password ageing of at most 60 days with 7 days' minimum and warning, 5 login retries,
    a 60 s login timeout and regular IDs from 1000."""
    assert "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in login_defs.get("ENV_SUPATH", "")
    assert "/usr/local/bin:/usr/bin:/bin" in login_defs.get("ENV_PATH", "")
    assert ("077" if os_family == "redhat" else "027") in login_defs.get("UMASK", "")
    expected = {
        "PASS_MAX_DAYS": "60",
        "PASS_MIN_DAYS": "7",
        "PASS_WARN_AGE": "7",
        "LOGIN_RETRIES": "5",
        "LOGIN_TIMEOUT": "60",
        "UID_MIN": "1000",
        "GID_MIN": "1000",
    }
    assert {key: login_defs.get(key) for key in expected} == expected


@pytest.mark.control("os-05b")
def test_login_defs_el_system_id_ranges(host, stats, login_defs, os_family):
    """os-05b (EL only): login.defs is writable by nobody and system accounts and groups take IDs 201-999."""
    if os_family != "redhat":
        pytest.skip("os-05b concerns Red Hat family hosts only")
    assert stats["/etc/login.defs"]["mode"] & 0o222 == 0, oct(stats["/etc/login.defs"]["mode"])
    expected = {"SYS_UID_MIN": "201", "SYS_UID_MAX": "999", "SYS_GID_MIN": "201", "SYS_GID_MAX": "999"}
    assert {key: login_defs.get(key) for key in expected} == expected


@pytest.mark.control("os-06")
def test_no_denylisted_suid_sgid_programs(stats):
    """os-06: none of the denylisted programs (r-commands, ssh-keysign, pppd, lock helpers, arping, mtr...)
    exists with the set-user-ID or set-group-ID bit."""
    flagged = sorted(path for path in SUID_DENYLIST if path in stats and stats[path]["mode"] & 0o6000)
    assert flagged == []


@pytest.mark.control("os-07")
def test_uids_and_gids_are_unique(host):
    """os-07: no two accounts share a UID and no two groups share a GID."""
    out = host.run("getent passwd | cut -d: -f3; echo --; getent group | cut -d: -f3").stdout
    uids, _, gids = out.partition("--")
    for ids in (uids.split(), gids.split()):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        assert duplicates == []


@pytest.mark.control("os-08")
def test_entropy_available(host):
    """os-08: the kernel reports at least 1000 bits of entropy available."""
    assert int(host.file("/proc/sys/kernel/random/entropy_avail").content_string) >= 1000


@pytest.mark.control("os-09")
def test_no_rhosts_or_netrc(host):
    """os-09: no .rhosts or .netrc file (trust or stored passwords) lies within three levels of /."""
    found = host.run("find / -maxdepth 3 \\( -iname .rhosts -o -iname .netrc \\) -print 2>/dev/null").stdout.split()
    assert found == []


@pytest.mark.control("os-10")
def test_unused_filesystems_cannot_load(host):
    """os-10: modprobe is told to run /bin/true instead of loading cramfs, freevxfs, jffs2, hfs, hfsplus,
    squashfs and udf, and vfat too where the machine does not boot by UEFI. In a container the files are
    checked as written; they take effect where the host boots its own kernel."""
    modules = list(UNUSED_FILESYSTEMS)
    if not host.file("/sys/firmware/efi").exists:
        modules.append("vfat")
    config = host.run("cat /etc/modprobe.d/*.conf 2>/dev/null").stdout
    installs = dict(re.findall(r"^\s*install\s+(\S+)\s+(\S+)", config, re.M))
    assert {m: installs.get(m) for m in modules} == dict.fromkeys(modules, "/bin/true")


@pytest.mark.control("os-11")
def test_log_directory_belongs_to_root(stats):
    """os-11: /var/log is a directory owned by root, group root or syslog."""
    log = stats.get("/var/log")
    assert log is not None and log["kind"] == "directory"
    assert log["user"] == "root" and log["group"] in ("root", "syslog")


@pytest.mark.control("os-12")
def test_cpu_reports_no_unmitigated_vulnerability(host, in_container):
    """os-12: no entry of /sys/devices/system/cpu/vulnerabilities says the CPU is vulnerable (unmitigated)."""
    if in_container:
        pytest.skip("the CPU and its mitigations are the machine's, not a container's")
    out = host.run("grep -H . /sys/devices/system/cpu/vulnerabilities/* 2>/dev/null").stdout
    assert [line for line in out.splitlines() if "vulnerable" in line.lower()] == []


@pytest.mark.control("os-13")
def test_cron_files_are_roots_alone(stats):
    """os-13: /etc/crontab and the cron.d/hourly/daily/weekly/monthly directories, where present, belong to
    root and nobody else may read or write them."""
    present = {path: stats[path] for path in CRON_PATHS if path in stats}
    loose = {
        path: f"{s['user']} {oct(s['mode'])}" for path, s in present.items() if s["user"] != "root" or s["mode"] & 0o066
    }
    assert loose == {}


@pytest.mark.parametrize(
    "control", [pytest.param(c, marks=pytest.mark.control(c), id=c) for c in sorted(MOUNT_OPTIONS)]
)
def test_mount_options(control, mounts, host, in_container):
    """os-14/15/16: each listed mount point that is a mount of its own carries noexec / nosuid / nodev.

    In a container /dev is the runtime's, mounted afresh at every start: there the options checked are
    those fstab gives it for boot, as the kernel's settings are read from the files that set them.
    """
    option, points = MOUNT_OPTIONS[control]
    in_force = dict(mounts)
    if in_container and "/dev" in points:
        fstab = host.file("/etc/fstab").content_string if host.file("/etc/fstab").exists else ""
        entries = [line.split() for line in fstab.splitlines() if line.strip() and not line.startswith("#")]
        in_force["/dev"] = next((set(e[3].split(",")) for e in entries if len(e) > 3 and e[1] == "/dev"), set())
    missing = sorted(point for point in points if point in in_force and option not in in_force[point])
    assert missing == [], f"mounted without {option}"


# ---------------------------------------------------------------- package-*


# Legacy servers of cleartext or unauthenticated protocols (package-01..06).
ABSENT_PACKAGES = [
    pytest.param(("inetd", "xinetd"), marks=pytest.mark.control("package-01"), id="package-01-inetd"),
    pytest.param(("telnetd",), marks=pytest.mark.control("package-02"), id="package-02-telnet"),
    pytest.param(("rsh-server",), marks=pytest.mark.control("package-03"), id="package-03-rsh"),
    pytest.param(("ypserv",), marks=pytest.mark.control("package-05"), id="package-05-nis"),
    pytest.param(("tftp-server",), marks=pytest.mark.control("package-06"), id="package-06-tftp"),
]


@pytest.mark.parametrize("packages", ABSENT_PACKAGES)
def test_no_legacy_server_is_installed(host, packages):
    """package-01..06: no inetd or xinetd, telnet, rsh, NIS (ypserv) or TFTP server is installed."""
    installed = [name for name in packages if host.package(name).is_installed]
    assert installed == []


@pytest.mark.control("package-07")
def test_syslog_server_installed(host):
    """package-07: rsyslog is installed to receive the system's and applications' logs (in containers too:
    the bundle runs it there)."""
    assert host.package("rsyslog").is_installed


AUDITD_SETTINGS = {
    "log_file": "/var/log/audit/audit.log",
    "log_format": "raw",
    "max_log_file_action": "keep_logs",
    "space_left": "75",
    "action_mail_acct": "root",
    "space_left_action": "syslog",
    "admin_space_left": "50",
    "admin_space_left_action": "suspend",
    "disk_full_action": "suspend",
    "disk_error_action": "suspend",
}


@pytest.mark.control("package-08")
def test_auditd_installed_and_configured(host, in_container, os_family):
    """package-08: auditd is installed and keeps its log at /var/log/audit/audit.log in raw format, flushes
    incrementally, keeps full logs, warns by syslog at 75 MB left and suspends at 50 MB or on a full or
    failing disk. Not in a container, where the kernel's audit subsystem is the machine's."""
    if in_container:
        pytest.skip("auditd cannot run in a container: the kernel's audit subsystem is the machine's")
    assert host.package("audit" if os_family == "redhat" else "auditd").is_installed
    conf = {}
    for line in host.file("/etc/audit/auditd.conf").content_string.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.strip().startswith("#"):
            conf[key.strip().lower()] = value.strip()
    assert conf.get("flush", "").lower() in ("incremental", "incremental_async")
    assert {key: conf.get(key, "").lower() for key in AUDITD_SETTINGS} == {
        key: value.lower() for key, value in AUDITD_SETTINGS.items()
    }


@pytest.mark.control("package-09")
def test_no_prelink(host):
    """package-09: prelink, which rewrites binaries and defeats address randomisation, is not installed."""
    assert not host.package("prelink").is_installed


# ---------------------------------------------------------------- sysctl-*


@pytest.mark.parametrize(
    "control", [pytest.param(c, marks=pytest.mark.control(c), id=c) for c in sorted(SYSCTL_CONTROLS)]
)
def test_kernel_settings(control, kernel):
    """sysctl-01..34: each control's kernel settings hold the hardened value (forwarding, reverse-path
    filter, ICMP and ARP behaviour, redirects, source routing, martians, IPv6 router advertisements,
    module loading, SysRq, core dumps, address randomisation, link protection)."""
    values = kernel["values"]
    wanted = SYSCTL_CONTROLS[control]
    wrong = {key: values.get(key) for key, ok in wanted.items() if as_int(values.get(key)) not in ok}
    assert wrong == {}, f"read from {kernel['source']}; expected {wanted}"


@pytest.mark.control("sysctl-31b")
def test_core_dumps_of_privileged_programs_go_to_an_absolute_path(kernel):
    """sysctl-31b: where set-user-ID programs may dump core (fs.suid_dumpable = 2), kernel.core_pattern is an
    absolute path or a pipe to an absolute path."""
    values = kernel["values"]
    if as_int(values.get("fs.suid_dumpable")) != 2:
        pytest.skip("fs.suid_dumpable is not 2: set-user-ID programs dump no core")
    assert re.match(r"^\|?/", values.get("kernel.core_pattern", "")), values.get("kernel.core_pattern")


@pytest.mark.control("sysctl-33")
def test_cpu_has_no_execute_protection(host):
    """sysctl-33: the CPU marks pages non-executable (the nx flag; without it the kernel's exec-shield
    must be on, and the control still fails). The flag is the processor's, so a container reads the same
    answer as its host."""
    flags = set()
    for line in host.file("/proc/cpuinfo").content_string.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    if "nx" not in flags:
        assert host.run("sysctl -n kernel.exec-shield").stdout.strip() == "1", "no nx flag and exec-shield off"
    assert "nx" in flags
