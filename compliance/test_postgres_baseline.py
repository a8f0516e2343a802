"""dev-sec postgres-baseline (postgres-01 .. postgres-19) as our own tests.

Everything is read from the running server, so the same tests hold for Debian's
PostgreSQL 15 and 17 and for EL's layout: one psql session (as the server's
account, over its socket) reads pg_settings, the roles, pg_hba_file_rules and,
in every database that takes connections, languages, grants and functions; one
shell call then reads the files the settings name (data directory,
postgresql.conf, pg_hba.conf, the TLS key), the postmaster's unit and where its
log goes. Where the bundle meets a control differently but at least as strictly
(scram-sha-256 rather than md5, TLS 1.2+ with no weak suite, its own log
settings), the test asserts the property and its docstring says so.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import shlex
from collections import defaultdict
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.baseline("postgres-baseline")

SEP = "\x1f"
# End of community support of each major release (PostgreSQL's versioning policy:
# five years, the second Thursday of November).
COMMUNITY_EOL = {
    13: dt.date(2025, 11, 13),
    14: dt.date(2026, 11, 12),
    15: dt.date(2027, 11, 11),
    16: dt.date(2028, 11, 9),
    17: dt.date(2029, 11, 8),
    18: dt.date(2030, 11, 14),
}

SERVER_SQL = r"""
SELECT 'setting', name, setting FROM pg_settings;
SELECT 'role', rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolpassword IS NULL,
       coalesce(rolpassword LIKE 'SCRAM-SHA-256$%', false)
  FROM pg_authid;
SELECT 'hba', line_number, type, array_to_string(database, ','), array_to_string(user_name, ','),
       coalesce(address, ''), coalesce(auth_method, ''), coalesce(error, '')
  FROM pg_hba_file_rules;
SELECT 'authid_user', r.rolname FROM pg_roles r
 WHERE r.rolcanlogin AND NOT r.rolsuper
   AND has_table_privilege(r.oid, 'pg_catalog.pg_authid', 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER');
SELECT 'authid_acl', a.grantee::regrole, a.grantee = c.relowner
  FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
 WHERE c.oid = 'pg_catalog.pg_authid'::regclass;
"""

DATABASE_SQL = r"""
SELECT 'lang', current_database(), lanname, lanpltrusted FROM pg_language;
SELECT 'public_grant', current_database(), table_schema || '.' || table_name, privilege_type
  FROM information_schema.table_privileges
 WHERE grantee = 'PUBLIC' AND table_schema NOT IN ('pg_catalog', 'information_schema');
SELECT 'grant_option', current_database(), c.oid::regclass, a.grantee, a.privilege_type
  FROM pg_class c, aclexplode(c.relacl) a
 WHERE a.is_grantable AND a.grantee <> c.relowner
   AND (a.grantee = 0 OR NOT (SELECT rolsuper FROM pg_roles WHERE oid = a.grantee));
SELECT 'secdef', current_database(), p.oid::regprocedure, pg_get_userbyid(p.proowner)
  FROM pg_proc p WHERE p.prosecdef;
"""


@dataclass
class Postgres:
    settings: dict[str, str]
    roles: list[dict]
    hba: list[dict]
    authid_users: list[str]
    authid_acl: list[tuple[str, bool]]
    per_db: dict[str, list[list[str]]]

    @property
    def major(self) -> int:
        return int(self.settings["server_version_num"]) // 10000


def _psql(sql: str, database: str = "postgres") -> str:
    return f"psql -XAtq -v ON_ERROR_STOP=1 -F $'{SEP}' -d {shlex.quote(database)} <<'SQL'\n{sql}\nSQL\n"


@pytest.fixture(scope="module")
def pg(host) -> Postgres:
    if not host.exists("psql"):
        pytest.skip("PostgreSQL's psql is not installed on this host")
    # One round trip: the server-wide queries, then the per-database ones in each database.
    script = (
        "cd / && "
        + _psql(SERVER_SQL)
        + "for db in $(psql -XAtq -d postgres -c 'SELECT datname FROM pg_database WHERE datallowconn'); do\n"
        + _psql(DATABASE_SQL, "$db").replace("'$db'", '"$db"')
        + "done\n"
    )
    result = host.run(f"runuser -u postgres -- bash -c {shlex.quote(script)}")
    assert result.rc == 0, result.stderr
    rows = [line.split(SEP) for line in result.stdout.splitlines() if SEP in line]
    settings = {r[1]: r[2] for r in rows if r[0] == "setting"}
    roles = [
        {
            "name": r[1],
            "super": r[2] == "t",
            "createrole": r[3] == "t",
            "createdb": r[4] == "t",
            "login": r[5] == "t",
            "no_password": r[6] == "t",
            "scram": r[7] == "t",
        }
        for r in rows
        if r[0] == "role"
    ]
    hba = [
        {"line": r[1], "type": r[2], "database": r[3], "user": r[4], "address": r[5], "method": r[6], "error": r[7]}
        for r in rows
        if r[0] == "hba"
    ]
    per_db: dict[str, list[list[str]]] = defaultdict(list)
    for r in rows:
        if r[0] in ("lang", "public_grant", "grant_option", "secdef"):
            per_db[r[0]].append(r[1:])
    return Postgres(
        settings=settings,
        roles=roles,
        hba=hba,
        authid_users=[r[1] for r in rows if r[0] == "authid_user"],
        authid_acl=[(r[1], r[2] == "t") for r in rows if r[0] == "authid_acl"],
        per_db=per_db,
    )


@dataclass
class Files:
    stat: dict[str, tuple[str, str, int, str]]
    unit: str
    unit_active: str
    unit_enabled: str
    stderr_target: str
    postmasters: int


@pytest.fixture(scope="module")
def files(host, pg) -> Files:
    """Modes of the files the settings name, the postmaster's unit, where its stderr goes, and how many run."""
    s = pg.settings
    paths = [s["data_directory"], posixpath.dirname(s["config_file"]), s["config_file"], s["hba_file"]]
    if s.get("ssl_key_file"):
        key = s["ssl_key_file"]
        paths.append(key if key.startswith("/") else posixpath.join(s["data_directory"], key))
    quoted = " ".join(shlex.quote(p) for p in paths)
    pidfile = shlex.quote(posixpath.join(s["data_directory"], "postmaster.pid"))
    script = f"""
stat -c '%n|%U|%G|%a|%F' {quoted}
pid=$(head -n 1 {pidfile})
unit=$(sed -n 's|^0::.*/\\([^/]*\\.service\\)$|\\1|p' /proc/$pid/cgroup | head -n 1)
echo "unit|$unit|$(systemctl is-active "$unit")|$(systemctl is-enabled "$unit")"
echo "stderr|$(readlink /proc/$pid/fd/2)"
ps -eo pid=,ppid=,comm= | awk '{{print "proc|" $1 "|" $2 "|" $3}}'
"""
    out = host.run(script).stdout
    stat, procs = {}, []
    unit = active = enabled = stderr = ""
    for line in out.splitlines():
        parts = line.split("|")
        if parts[0] == "unit":
            unit, active, enabled = parts[1:4]
        elif parts[0] == "stderr":
            stderr = parts[1]
        elif parts[0] == "proc":
            procs.append(parts[1:])
        elif len(parts) == 5:
            stat[parts[0]] = (parts[1], parts[2], int(parts[3], 8), parts[4])
    names = {"postgres", "postmaster"}
    by_pid = {pid: (ppid, comm) for pid, ppid, comm in procs}
    postmasters = sum(
        1 for pid, (ppid, comm) in by_pid.items() if comm in names and by_pid.get(ppid, ("", ""))[1] not in names
    )
    return Files(stat, unit, active, enabled, stderr, postmasters)


def _rules(pg: Postgres, *types: str) -> list[dict]:
    return [r for r in pg.hba if r["type"] in types]


# --- the controls -----------------------------------------------------------


@pytest.mark.control("postgres-01")
def test_server_runs_under_an_enabled_unit(files):
    """The postmaster runs under a systemd unit that is active and enabled at boot (Debian's cluster instance
    units are enabled by its generator from start.conf, which systemd reports as enabled-runtime)."""
    assert files.unit, "the postmaster runs under no systemd service"
    assert files.unit_active == "active"
    assert files.unit_enabled in ("enabled", "enabled-runtime"), files.unit_enabled


@pytest.mark.control("postgres-02")
def test_release_is_stable_and_supported(pg):
    """A final release (no beta, rc or devel) of a major version the PostgreSQL project still supports.
    dev-sec's pattern lists 9.6 to 13, all past their end of life now; the property is current support."""
    version = pg.settings["server_version"]
    assert not re.search(r"beta|rc\d|devel", version, re.IGNORECASE), version
    major = pg.major
    if major > max(COMMUNITY_EOL):
        return
    assert major in COMMUNITY_EOL, f"PostgreSQL {major} is past its end of life"
    assert dt.date.today() < COMMUNITY_EOL[major], f"PostgreSQL {major} left community support"


@pytest.mark.control("postgres-03")
def test_one_instance(files):
    """Exactly one postmaster runs on the host."""
    assert files.postmasters == 1


@pytest.mark.control("postgres-04")
def test_no_untrusted_languages_but_c_and_internal(pg):
    """In every database, the only untrusted procedural languages are c and internal."""
    untrusted = [(db, name) for db, name, trusted in pg.per_db["lang"] if trusted == "f"]
    assert untrusted and all(name in ("c", "internal") for _, name in untrusted), untrusted


@pytest.mark.control("postgres-05")
def test_only_default_languages(pg):
    """In every database, no procedural language beyond internal, c, sql and plpgsql is installed."""
    extra = [(db, name) for db, name, _ in pg.per_db["lang"] if name not in ("internal", "c", "sql", "plpgsql")]
    assert extra == []


@pytest.mark.control("postgres-06")
def test_roles_without_a_password_log_in_by_os_identity_only(pg):
    """dev-sec wants a password on every login role. A role without one can pass no password method
    (scram-sha-256, md5), so it logs in only where pg_hba.conf trusts or checks the OS identity. Here no rule
    trusts, no TCP rule uses ident, and the only login roles without a password are superusers named in a local
    peer rule: the postgres account, reached by root and the postgres OS user over the socket. Giving it a
    password would be weaker: it would open password login to the superuser over TCP."""
    assert not [r for r in pg.hba if r["method"] == "trust"]
    assert not [r for r in pg.hba if r["type"] != "local" and r["method"] == "ident"]
    peer_users = {r["user"] for r in _rules(pg, "local") if r["method"] == "peer"}
    for role in (r for r in pg.roles if r["login"] and r["no_password"]):
        assert role["super"], f"{role['name']} logs in without a password"
        assert role["name"] in peer_users, f"{role['name']} has no password and no peer rule of its own"


@pytest.mark.control("postgres-07")
def test_passwords_are_salted_scram_hashes(pg):
    """password_encryption is scram-sha-256 and every stored password is a SCRAM-SHA-256 verifier (salted)."""
    assert pg.settings["password_encryption"] == "scram-sha-256"
    plain = [r["name"] for r in pg.roles if not r["no_password"] and not r["scram"]]
    assert plain == []


@pytest.mark.control("postgres-08")
def test_only_one_role_may_administer(pg):
    """Exactly one role (the bootstrap superuser) has SUPERUSER, CREATEROLE or CREATEDB."""
    admins = [r["name"] for r in pg.roles if r["super"] or r["createrole"] or r["createdb"]]
    assert len(admins) == 1, admins


@pytest.mark.control("postgres-09")
def test_only_the_dba_reaches_pg_authid(pg):
    """pg_authid's privileges are granted to its owner only, and no login role other than a superuser holds any
    privilege on it (directly or through a role it belongs to)."""
    assert all(is_owner for _, is_owner in pg.authid_acl), pg.authid_acl
    assert pg.authid_users == []


@pytest.mark.control("postgres-10")
def test_configuration_belongs_to_the_server_account(pg, files):
    """The configuration directory is the server account's alone (0700), postgresql.conf and pg_hba.conf are
    owned by it, not executable, writable by it only and readable by no one else (group read allowed)."""
    account = files.stat[pg.settings["data_directory"]][0]
    conf_dir = posixpath.dirname(pg.settings["config_file"])
    user, _, mode, kind = files.stat[conf_dir]
    assert (user, kind) == (account, "directory")
    assert mode & 0o700 == 0o700 and mode & 0o077 == 0, oct(mode)
    for path in (pg.settings["config_file"], pg.settings["hba_file"]):
        user, _, mode, kind = files.stat[path]
        assert (user, kind) == (account, "regular file"), path
        assert mode & 0o600 == 0o600, (path, oct(mode))
        assert mode & 0o137 == 0, (path, oct(mode))


@pytest.mark.control("postgres-11")
def test_ssl_is_on(pg, files):
    """TLS is on, with a key only the server account can read."""
    assert pg.settings["ssl"] == "on"
    account = files.stat[pg.settings["data_directory"]][0]
    key = [v for p, v in files.stat.items() if p.endswith(posixpath.basename(pg.settings["ssl_key_file"]))]
    assert key and key[0][0] in (account, "root") and key[0][2] & 0o077 == 0, key


@pytest.fixture(scope="module")
def weak_suites(host, pg) -> set[str]:
    """Suites the server's ssl_ciphers allows that are anonymous, null, export, low or MD5-based."""
    allowed = host.run(f"openssl ciphers {shlex.quote(pg.settings['ssl_ciphers'])}")
    assert allowed.rc == 0, allowed.stderr
    weak = host.run("openssl ciphers 'aNULL:eNULL:EXP:LOW:MD5:RC4' 2>/dev/null").stdout
    # OpenSSL lists its TLS 1.3 suites (all strong) whatever the string says.
    weak_names = {name for name in weak.strip().split(":") if name and not name.startswith("TLS_")}
    return set(allowed.stdout.strip().split(":")) & weak_names


@pytest.mark.control("postgres-12")
def test_no_weak_ssl_suites(pg, weak_suites):
    """dev-sec pins ssl_ciphers to 'ALL:!ADH:!LOW:!EXP:!MD5:@STRENGTH'; the property is that no anonymous, export,
    low-grade or MD5 suite can be negotiated. The host's OpenSSL expands the server's ssl_ciphers and none of those
    is in it; ssl_min_protocol_version keeps out every protocol before TLS 1.2."""
    assert weak_suites == set()
    assert pg.settings["ssl_min_protocol_version"] in ("TLSv1.2", "TLSv1.3")


@pytest.mark.control("postgres-13")
def test_local_connections_authenticate(pg):
    """dev-sec wants peer on every local (socket) rule. The superuser's local rule is peer; the bundle's other local
    rule asks for scram-sha-256 instead, which PgBouncer needs (it logs in over the socket as the app's role, with
    the role's SCRAM keys, from an OS account of another name) and which is at least as strict: the client must prove the role's secret, whoever it runs as.
    No local rule trusts, takes a clear-text password or md5."""
    local = _rules(pg, "local")
    assert local
    assert all(r["method"] in ("peer", "scram-sha-256", "reject") for r in local), local
    superusers = {r["name"] for r in pg.roles if r["super"] and r["login"]}
    assert any(r["method"] == "peer" and r["user"] in superusers for r in local)


@pytest.mark.control("postgres-14")
def test_tcp_rules_use_scram(pg):
    """Every TCP rule (hostssl, and host or hostnossl if any) authenticates with scram-sha-256, or rejects."""
    for rule in _rules(pg, "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"):
        assert rule["method"] in ("scram-sha-256", "reject"), rule


@pytest.mark.control("postgres-15")
def test_no_connection_without_tls(pg):
    """No rule admits a TCP connection without TLS: every host or hostnossl rule rejects (the bundle ends
    pg_hba.conf with explicit hostnossl reject lines, which dev-sec's text match would flag although they refuse),
    loopback included."""
    assert all(r["method"] == "reject" for r in _rules(pg, "host", "hostnossl")), _rules(pg, "host", "hostnossl")
    assert not [r for r in pg.hba if r["error"]]


@pytest.mark.control("postgres-16")
def test_logging(pg, files):
    """Sessions and durations are logged to a file with who, where and when. dev-sec's fixed values are met by
    their property: connections and disconnections logged; statement durations logged (log_duration, or the
    bundle's log_min_duration_statement, which logs each slow statement with its duration and text); each line
    prefixed with a timestamp, the user, the database and the client's address (%h or %r; the address rather
    than log_hostname's reverse DNS name, which a client can forge); and the log kept in files, by the logging
    collector or, on Debian, by pg_ctlcluster writing the server's stderr to /var/log/postgresql."""
    s = pg.settings
    assert s["log_connections"] not in ("off", "")
    assert s["log_disconnections"] == "on"
    assert s["log_duration"] == "on" or int(s["log_min_duration_statement"]) >= 0
    prefix = s["log_line_prefix"]
    assert re.search(r"%[tmn]", prefix) and "%u" in prefix and "%d" in prefix and re.search(r"%[hr]", prefix), prefix
    to_file = files.stderr_target.startswith("/") and not files.stderr_target.startswith("/dev/")
    assert s["logging_collector"] == "on" or to_file, files.stderr_target


@pytest.mark.control("postgres-17")
def test_no_table_grants_to_public(pg):
    """In every database, no table or view outside pg_catalog and information_schema grants anything to PUBLIC."""
    assert pg.per_db["public_grant"] == []


@pytest.mark.control("postgres-18")
def test_no_grant_option_handed_out(pg):
    """In every database, no role holds a privilege WITH GRANT OPTION on a table, view or sequence except its
    owner (whose grant option is inherent and cannot be revoked) and superusers. dev-sec's query, run in the
    postgres database only, would also count the app role's own tables in the app database."""
    assert pg.per_db["grant_option"] == []


@pytest.mark.control("postgres-19")
def test_no_security_definer_functions(pg):
    """In every database, no function runs with its owner's rights (SECURITY DEFINER)."""
    assert pg.per_db["secdef"] == []
