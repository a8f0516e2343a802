"""The topology of a deployment, decided in one place.

``procurement_topology`` answers, for one host, every question of who talks
to whom and on which port: the peers of each tier, the database primary,
the database and cache this host uses as a client, the host its backups
read, what its firewall opens and what its Prometheus scrapes. The roles
and group_vars read the answer; none of them decides these things again.

Ports belong to the role that serves them (``app_bind_port`` to app,
``postgresql_port`` to postgresql, ...). A host's port is the value its
inventory gives that variable, or else the default in the owning role's
``defaults/main.yml``, so that a port changed in one place moves every
firewall rule, upstream, scrape target and connection string with it.
"""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

import yaml

# Each port: the variable that sets it and the role that owns it.
PORTS = {
    "app": ("app_bind_port", "app"),
    "postgresql": ("postgresql_port", "postgresql"),
    "pgbouncer": ("pgbouncer_port", "pgbouncer"),
    "redis": ("redis_port", "redis"),
    "node_exporter": ("node_exporter_port", "node_exporter"),
    "postgres_exporter": ("postgres_exporter_port", "postgres_exporter"),
    "redis_exporter": ("redis_exporter_port", "redis_exporter"),
    "nginx_exporter": ("nginx_exporter_port", "nginx_exporter"),
    "pgbackrest": ("pgbackrest_tls_port", "pgbackrest"),
    "etcd_client": ("etcd_client_port", "etcd"),
    "etcd_peer": ("etcd_peer_port", "etcd"),
    "etcd_metrics": ("etcd_metrics_port", "etcd"),
    "patroni_restapi": ("patroni_restapi_port", "patroni"),
    "haproxy_primary": ("haproxy_primary_port", "haproxy"),
    "haproxy_replica": ("haproxy_replica_port", "haproxy"),
    "haproxy_pooled": ("haproxy_pooled_port", "haproxy"),
}
# The inventory groups of the bundle.
TIERS = ("web", "app", "db", "db_replica", "cache", "monitoring", "backup", "etcd")

# Other settings of the roles that the wiring and the capacity model read.
OWNED = {
    "app_home": "app",
    "app_workers": "app",
    "app_threads": "app",
    "app_db_pool_min": "app",
    "app_db_pool_max": "app",
    "nginx_stub_status_listen": "nginx",
    "pgbouncer_default_pool_size": "pgbouncer",
    "pgbouncer_reserve_pool_size": "pgbouncer",
    "pgbouncer_max_client_conn": "pgbouncer",
}

# Connections each database server keeps beyond the app's, by who uses them.
RESERVED = {
    # PostgreSQL's superuser_reserved_connections (its default).
    "superuser": 3,
    # postgres_exporter's session on each database host.
    "monitoring": 2,
    # A release's migration run (its own connection, outside the pools).
    "migrations": 1,
    # An operator's psql, as the manual's troubleshooting steps open it.
    "operators": 5,
}

# The site itself: Nginx serves HTTP (redirects) and HTTPS to everyone.
SITE_PORTS = ((80, "HTTP"), (443, "HTTPS"))

# Prometheus jobs: the groups each one scrapes and the port it reads.
SCRAPE_JOBS = (
    ("node", ("all",), "node_exporter"),
    ("postgresql", ("db",), "postgres_exporter"),
    ("redis", ("cache",), "redis_exporter"),
    ("nginx", ("web",), "nginx_exporter"),
    ("procurement", ("app",), "app"),
    ("etcd", ("etcd",), "etcd_metrics"),
    # Only with several db hosts (Patroni); its REST API serves /metrics over TLS.
    ("patroni", ("db",), "patroni_restapi"),
)
# Where a monitoring host keeps the certificate authority of Patroni's REST
# API, to scrape it over verified TLS.
PATRONI_SCRAPE_CA_DIR = "/etc/prometheus/patroni"


class Topology:
    """The deployment as one host sees it."""

    def __init__(self, groups, hostvars, host, roles_dir, settings):
        self.groups = groups
        self.hostvars = hostvars
        self.host = host
        self.members = list(settings.get("hosts") or groups.get("all", []))
        self.pgbouncer = bool(settings.get("pgbouncer"))
        self.backup_from_replica = bool(settings.get("backup_from_replica"))
        # Set by decide(): several db hosts (Patroni) and the hosts that reach them through HAProxy.
        self.patroni = False
        self.endpoint_hosts = []
        self._defaults = _role_defaults(Path(roles_dir))
        # Each hostvars[host] builds that host's variables anew: look each up once.
        self._host_vars = {}
        self._values = {}

    # Inventory facts -----------------------------------------------------

    def tier(self, name):
        """Hosts of a group that belong to this host's deployment, in inventory order."""
        hosts = self.groups.get(name) or []
        return [host for host in hosts if host in self.members]

    def vars_of(self, host):
        if host not in self._host_vars:
            self._host_vars[host] = self.hostvars[host]
        return self._host_vars[host]

    def value(self, host, variable):
        """A host's variable as its inventory sets it (None when unset), looked up once."""
        key = (host, variable)
        if key not in self._values:
            self._values[key] = self.vars_of(host).get(variable)
        return self._values[key]

    def address(self, host):
        return str(self.value(host, "procurement_private_address"))

    def addresses(self, hosts):
        return [self.address(host) for host in hosts]

    def others(self, hosts):
        return [host for host in hosts if host != self.host]

    def owned(self, host, variable, role):
        """A role's variable for a host: its inventory value, else the role's default."""
        value = self.value(host, variable) if host in self.hostvars else None
        return self._defaults[role][variable] if value is None else value

    def port(self, host, name):
        variable, role = PORTS[name]
        value = self.owned(host, variable, role)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{variable} of {host} must be a port number, not {value!r}") from None

    # Decisions -----------------------------------------------------------

    def decide(self):
        me = self.host
        app, web, db = self.tier("app"), self.tier("web"), self.tier("db")
        cache, backup = self.tier("cache"), self.tier("backup")
        monitoring = self.tier("monitoring")
        primary = db[0] if db else ""
        # Several db hosts make a Patroni cluster: the first takes over its own
        # server as the first leader, the others are cloned from it, and any of
        # them may lead later. Its clients reach the leader (or a replica)
        # through HAProxy on their own host: the app nodes and backup hosts.
        self.patroni = len(db) > 1
        endpoint_hosts = _unique(app + backup) if self.patroni else []
        self.endpoint_hosts = endpoint_hosts
        standbys = db[1:] if self.patroni else []
        # Backups read the primary, or the first replica with backup_from_replica.
        backup_source = ((standbys if self.backup_from_replica else []) + db + [""])[0]

        peers = {
            "app": self.addresses(self.others(app)),
            "web": self.addresses(self.others(web)),
            "monitoring": self.addresses(self.others(monitoring)),
            "backup": self.others(backup),
        }
        # Hosts that log in to the app database here: app nodes reach the
        # primary (unless PgBouncer pools them), backup hosts the host they dump.
        if self.patroni:
            # Any member may lead: each answers every HAProxy host (with PgBouncer on every member, the app
            # nodes reach it there, and only the backup hosts reach PostgreSQL itself).
            clients = (backup if self.pgbouncer else endpoint_hosts) if me in db else []
        else:
            clients = (app if me in db and not self.pgbouncer else []) + (backup if me == backup_source else [])
        peers["db_clients"] = self.addresses(_unique(self.others(clients)))
        # The database port also answers the other members of a Patroni cluster (replication, pg_rewind).
        streams = db if self.patroni else []
        peers["db"] = _unique(peers["db_clients"] + (self.addresses(self.others(streams)) if me in db else []))
        peers["pgbouncer"] = self.addresses(self.others(app)) if self.pgbouncer and me in db else []
        peers["patroni"] = (
            self.addresses(_unique(self.others(db) + endpoint_hosts)) if self.patroni and me in db else []
        )

        ports = {name: self.port(me, name) for name in PORTS}
        pgbackrest = self._pgbackrest(primary, standbys, backup)
        etcd = self.tier("etcd")
        exporter_address = self.address(me) if peers["monitoring"] else "127.0.0.1"
        return {
            "hosts": self.members,
            "tiers": {name: self.tier(name) for name in TIERS},
            "ports": ports,
            "primary": primary,
            "primary_address": self.address(primary) if primary else "",
            # The servers that stream from this one: every other member under Patroni.
            "replicas": [{"name": host, "address": self.address(host)} for host in self.others(streams)],
            "peers": peers,
            "database": self._database_endpoint(primary, pool=self.pgbouncer),
            "restore_target": self._database_endpoint(me if me in db or not primary else primary, pool=False),
            "backup_source": backup_source,
            "backup_database": self._database_endpoint(
                me if me in db and not self.backup_from_replica else backup_source,
                pool=False,
                replica=self.backup_from_replica,
            ),
            "patroni": {
                "enabled": self.patroni,
                "members": [{"name": host, "address": self.address(host)} for host in db] if self.patroni else [],
                "ca_host": primary if self.patroni else "",
                "endpoint_hosts": endpoint_hosts,
                # PgBouncer on every member, the app nodes' HAProxy reaching the leader's.
                "pooled": self.patroni and self.pgbouncer,
                "scrape_ca_dir": PATRONI_SCRAPE_CA_DIR,
            },
            "cache_url": self._cache_url(cache),
            "pgbackrest": pgbackrest,
            # The etcd cluster: its members in inventory order, the first keeping its certificate authority.
            "etcd": {
                "members": [{"name": host, "address": self.address(host)} for host in etcd],
                "ca_host": etcd[0] if etcd else "",
            },
            "listen": {
                "app": "0.0.0.0" if peers["web"] or peers["monitoring"] else "127.0.0.1",
                "postgresql": ["localhost"] + ([self.address(me)] if peers["db"] else []),
                "pgbouncer": ["127.0.0.1"] + ([self.address(me)] if peers["pgbouncer"] else []),
                "redis": ["127.0.0.1"] + ([self.address(me)] if me in cache and peers["app"] else []),
                "exporters": exporter_address,
            },
            "app_upstreams": (
                [f"127.0.0.1:{ports['app']}"] * 2
                if me in app
                else [f"{self.address(host)}:{self.port(host, 'app')}" for host in app]
            ),
            "app_static_root": f"{self.owned(me, 'app_home', 'app')}/static/" if me in app else "",
            "nginx_stub_status": self.owned(me, "nginx_stub_status_listen", "nginx"),
            "app_balancers": [host for host in web if host not in app],
            "app_balancer_upstream": f"{self.address(me)}:{ports['app']}",
            "capacity": self._capacity(app, backup),
            "firewall_rules": self._firewall_rules(
                peers,
                ports,
                app,
                db,
                cache,
                web,
                pgbackrest_remote=pgbackrest["mode"] == "remote",
                etcd=etcd,
            ),
            "scrape_jobs": self._scrape_jobs(exporter_address),
        }

    def _vcpus(self, host):
        """The host's vCPUs from its facts; the preflight's minimum until they are known."""
        facts = self.value(host, "ansible_facts") or {}
        vcpus = facts.get("processor_vcpus") or self.value(host, "ansible_processor_vcpus")
        return int(vcpus) if vcpus else int(self.value(host, "base_min_cpu_cores") or 4)

    def _number(self, host, variable):
        value = self.owned(host, variable, OWNED[variable])
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{variable} of {host} must be a whole number, not {value!r}") from None

    def _node_capacity(self, host):
        """gunicorn workers and threads of an app node, each worker's pool, and the node's total.

        A gthread worker serves at most ``app_threads`` requests at once and
        each holds one pooled connection, so a worker never needs more than
        its threads plus one (a health check opens its own); ``app_db_pool_max``
        caps that, ``app_db_pool_min`` is kept open within it.
        """
        workers = self._number(host, "app_workers")
        if workers <= 0:
            workers = 2 * self._vcpus(host) + 1
        threads = self._number(host, "app_threads")
        pool_max = min(self._number(host, "app_db_pool_max"), threads + 1)
        pool_min = min(self._number(host, "app_db_pool_min"), pool_max)
        return {
            "workers": workers,
            "threads": threads,
            "pool_min": pool_min,
            "pool_max": pool_max,
            "connections": workers * pool_max,
        }

    def _capacity(self, app, backup):
        """The connection budget of the deployment's database servers, summed over every app node."""
        nodes = {host: self._node_capacity(host) for host in app}
        clients = sum(node["connections"] for node in nodes.values())
        primary = (self.tier("db") or [""])[0]
        reserved = {**RESERVED, "backups": len(backup)}
        problems = []
        if self.tier("db_replica"):
            problems.append(
                f"group db_replica ({', '.join(self.tier('db_replica'))}): streaming replicas beside one primary are"
                " gone; several db hosts form a Patroni cluster that clones its own replicas and fails over by"
                " itself (with an etcd group of three). Move the db_replica hosts into db"
            )
        shared = [host for host in backup if host in self.tier("db")]
        if self.patroni and shared:
            problems.append(
                f"groups db ({', '.join(self.tier('db'))}) and backup ({', '.join(backup)}): {', '.join(shared)} is"
                " in both; under Patroni any member may lead, and pgBackRest's repository must stay where every"
                " member reaches it. Put the backup group on other hosts"
            )
        if self.pgbouncer and primary:
            pooled = self._number(primary, "pgbouncer_default_pool_size") + self._number(
                primary, "pgbouncer_reserve_pool_size"
            )
            limit = self._number(primary, "pgbouncer_max_client_conn")
            if clients > limit:
                problems.append(
                    f"{len(nodes)} app node(s) may open {clients} connections to PgBouncer on {primary}, "
                    f"more than pgbouncer_max_client_conn {limit}: raise it, or lower app_workers or app_threads"
                )
            server_side = pooled
        else:
            server_side = clients
        max_connections = server_side + sum(reserved.values())
        # A value the inventory pins is what the server admits.
        for server in self.tier("db"):
            pinned = self.value(server, "postgresql_max_connections")
            if pinned is not None and str(pinned).strip().isdigit() and int(pinned) < max_connections:
                problems.append(
                    f"postgresql_max_connections {int(pinned)} on {server} is below what the deployment needs, "
                    f"{max_connections}: {server_side} for the app"
                    + (" (PgBouncer's pool)" if self.pgbouncer else f" ({_node_sum(nodes)})")
                    + f" and {sum(reserved.values())} reserved ({_reserved_sum(reserved)}); raise it, lower"
                    " app_workers or app_threads, or turn on procurement_pgbouncer"
                )
        return {
            "nodes": nodes,
            "client_connections": clients,
            "app_connections": server_side,
            "reserved": reserved,
            "max_connections": max_connections,
            "problems": problems,
        }

    def _database_endpoint(self, server, pool, replica=False):
        """How this host reaches the app database on a server (inventory name).

        Under Patroni a client host reaches whichever member leads (or a
        replica) through its own HAProxy; TLS passes through it to PostgreSQL.
        """
        if self.host in self.endpoint_hosts:
            listener = "haproxy_replica" if replica else ("haproxy_pooled" if pool else "haproxy_primary")
            port = self.port(self.host, listener)
            return {"name": "", "host": "127.0.0.1", "port": port, "sslmode": "require", "local": False}
        if not server:
            port = self.port(self.host, "postgresql")
            return {"name": "", "host": "", "port": port, "sslmode": "require", "local": False}
        local = server == self.host
        port = self.port(server, "pgbouncer" if pool else "postgresql")
        return {
            "name": server,
            "host": "localhost" if local else self.address(server),
            "port": port,
            "sslmode": "prefer" if local else "require",
            "local": local,
        }

    def _cache_url(self, cache):
        if not cache:
            return ""
        server = self.host if self.host in cache else cache[0]
        host = "127.0.0.1" if server == self.host else self.address(server)
        return f"redis://{host}:{self.port(server, 'redis')}/0"

    def _firewall_rules(self, peers, ports, app, databases, cache, web, pgbackrest_remote=False, etcd=()):
        me = self.host
        rules = [{"port": port, "comment": comment} for port, comment in SITE_PORTS] if me in web else []

        def allow(port, sources, comment):
            if sources:
                rules.append({"port": port, "sources": sources, "comment": comment})

        if me in databases:
            allow(ports["postgresql"], peers["db"], "PostgreSQL from app nodes, replicas and backup hosts")
        # Patroni's REST API: the other members, the HAProxy hosts' health checks and Prometheus.
        allow(
            ports["patroni_restapi"],
            _unique(peers["patroni"] + (peers["monitoring"] if peers["patroni"] else [])),
            "Patroni REST API from members, HAProxy hosts and monitoring",
        )
        allow(ports["pgbouncer"], peers["pgbouncer"], "PgBouncer from app nodes")
        if me in cache:
            allow(ports["redis"], peers["app"], "Redis from app nodes")
        if me in app:
            allow(ports["app"], peers["web"], "gunicorn from the load balancers")
        # pgBackRest's TLS servers, between the database hosts and the repository hosts only.
        if pgbackrest_remote:
            backup = self.tier("backup")
            if me in databases:
                allow(
                    ports["pgbackrest"],
                    self.addresses(self.others(backup)),
                    "pgBackRest from repository hosts",
                )
            elif me in backup:
                allow(ports["pgbackrest"], self.addresses(databases), "pgBackRest from the database hosts")
        # etcd: peers among the members; clients are the other members and the database hosts (Patroni).
        if me in etcd:
            allow(ports["etcd_peer"], self.addresses(self.others(etcd)), "etcd peers")
            allow(
                ports["etcd_client"],
                self.addresses(_unique(self.others(etcd + databases))),
                "etcd clients: the other members and the database hosts",
            )
        watched = [("node_exporter", "node_exporter", True)]
        watched += [
            ("postgres_exporter", "postgres_exporter", me in databases),
            ("redis_exporter", "redis_exporter", me in cache),
            ("nginx_exporter", "nginx exporter", me in web),
            ("app", "app /metrics", me in app),
            ("etcd_metrics", "etcd metrics", me in etcd),
        ]
        for name, what, applies in watched:
            if applies:
                allow(ports[name], peers["monitoring"], f"{what} from monitoring hosts")
        return rules

    def _pgbackrest(self, primary, replicas, backup):
        """Where pgBackRest's repository is: on the primary when it is also a backup host (local),
        on the backup hosts apart from it (remote: one repository each, reached over pgBackRest's
        TLS server, the first holding the certificate authority), or nowhere (off: no backup host
        or no database). In remote mode every database host runs a TLS server, so that the
        repository hosts back up from a replica when there is one."""
        if not primary or not backup:
            mode = "off"
        elif primary in backup:
            mode = "local"
        else:
            mode = "remote"
        remote = mode == "remote"
        return {
            "mode": mode,
            "primary": primary,
            "pg_hosts": [{"name": host, "address": self.address(host)} for host in [primary, *replicas]]
            if remote
            else [],
            "repo_hosts": backup,
            "repos": [{"name": host, "address": self.address(host)} for host in backup] if remote else [],
            # The physical drill needs the server taking writes: the primary, or under Patroni every
            # member (each skips it while a replica).
            "drill_hosts": ([primary, *replicas] if self.patroni else [primary]) if mode != "off" else [],
            "ca_host": backup[0] if remote else "",
        }

    def _scrape_jobs(self, exporter_address):
        """One static config per watched host, labelled with its inventory name."""
        jobs = []
        for job_name, job_groups, port_name in SCRAPE_JOBS:
            if job_name == "patroni" and not self.patroni:
                continue
            members = {host for group in job_groups for host in self.tier(group)}
            configs = []
            for host in self.members:
                if host not in members:
                    continue
                if host != self.host:
                    address = self.address(host)
                else:
                    # The app's /metrics is scraped on loopback, which it always answers.
                    address = "127.0.0.1" if port_name == "app" else exporter_address
                target = f"{address}:{self.port(host, port_name)}"
                configs.append({"targets": [target], "labels": {"instance": host}})
            if job_name == "patroni":
                # Over TLS, checked against Patroni's authority (the monitoring play installs it).
                tls = {"scheme": "https", "tls_config": {"ca_file": f"{PATRONI_SCRAPE_CA_DIR}/ca.crt"}}
            else:
                tls = {}
            if configs:
                jobs.append({"job_name": job_name, **tls, "static_configs": configs})
        return jobs


def _node_sum(nodes):
    return " + ".join(f"{name} {n['workers']} workers x {n['pool_max']}" for name, n in nodes.items()) or "no app node"


def _reserved_sum(reserved):
    return ", ".join(f"{who} {count}" for who, count in reserved.items())


def _unique(items):
    return list(dict.fromkeys(items))


@functools.cache
def _role_defaults(roles_dir):
    defaults = {}
    for role in {owner for _port, owner in PORTS.values()} | set(OWNED.values()):
        path = roles_dir / role / "defaults" / "main.yml"
        defaults[role] = yaml.safe_load(path.read_text()) or {}
    return defaults


def procurement_topology(groups, hostvars, host, roles_dir, settings=None):
    """The topology of the deployment as ``host`` sees it (see the module's docstring)."""
    return Topology(groups, hostvars, host, roles_dir, settings or {}).decide()


# A batch (serial) size: a count of hosts of 1 or more, or a percentage from 1% to 100%.
BATCH = re.compile(r"^(?:[1-9][0-9]*|(?:[1-9][0-9]?|100)%)$")
# A release artifact: procurement-<version>-py<XY>.tar.gz.
ARTIFACT = re.compile(r"^procurement-(.+)-py[0-9]+[.]tar[.]gz$")


def procurement_preflight(groups: dict, settings: dict) -> list[str]:
    """What would make a run do harm or nothing, found before any host is touched: one line each.

    ``settings``: ``required`` (the tier groups the playbook needs hosts in),
    ``sources`` (ansible_inventory_sources), ``ignored_groups`` (groups that
    resemble a tier on purpose), ``batches`` (batch-size variable: value) and
    ``release`` (``version`` asked for, the ``source`` tree's version, the
    ``artifacts`` file names in the artifact ``dir``): a version that is
    neither built nor buildable is refused before anything is built.
    A group that resembles a tier whose group is empty is taken for a typo:
    with ``wbe`` instead of ``web``, the firewall would close 80 and 443.
    """
    if not groups.get("all"):
        sources = ", ".join(str(source) for source in settings.get("sources") or []) or "none"
        return [f"inventory: no hosts in {sources}; give -i the path of an inventory with hosts in its tier groups"]
    problems = []
    known = set(TIERS) | {"all", "ungrouped"} | set(settings.get("ignored_groups") or [])
    lookalikes: dict[str, list[str]] = {}
    for name in sorted(groups):
        if name not in known:
            for tier in difflib.get_close_matches(name, TIERS, n=1, cutoff=0.6):
                if not groups.get(tier):
                    lookalikes.setdefault(tier, []).append(name)
    for tier in TIERS:
        required = tier in (settings.get("required") or [])
        if groups.get(tier) or not (required or tier in lookalikes):
            continue
        line = f"group {tier}: no hosts"
        if tier in lookalikes:
            names = " and ".join(lookalikes[tier])
            line += f", but the inventory has {names}: rename it to {tier}, or list it in preflight_ignored_groups"
        else:
            line += f"; this playbook needs the {tier} tier: put its hosts in the group {tier}"
        problems.append(line)
    release = settings.get("release") or {}
    wanted = str(release.get("version") or "")
    if wanted and wanted != release.get("source"):
        built = sorted(
            {m[1] for name in release.get("artifacts") or [] if (m := ARTIFACT.match(name))},
            key=lambda v: [int(p) if p.isdigit() else p for p in re.split(r"[.]", v)],
        )
        if wanted not in built:
            problems.append(
                f"app_version: {wanted} has no artifact in {release.get('dir')} and is not the source tree's version"
                f" ({release.get('source') or 'unknown'}); artifacts there: {', '.join(built) or 'none'}. Build that"
                " version's artifact from its own source, or set app_artifact_dir to the folder that holds it"
            )
    for variable, value in (settings.get("batches") or {}).items():
        if value is not None and not BATCH.match(str(value).strip()):
            problems.append(
                f"{variable}: {value!r} is not a batch size; give a number of hosts of 1 or more, or 1% to 100%"
            )
    return problems


def procurement_argument_lines(problems: list[dict]) -> list[str]:
    """One line per bad role argument (from the procurement.ops.role_arguments action), with the hosts it is bad on."""
    found: dict[tuple[str, str, str], list[str]] = {}
    for problem in problems:
        found.setdefault((problem["variable"], problem["role"], problem["error"]), []).append(problem["host"])
    return [
        f"{variable}: {error} (role {role}, on {', '.join(on)}). Correct it where it is set, in the inventory"
        f" or an -e of this run; roles/{role}/README.md lists the role's arguments"
        for (variable, role, error), on in found.items()
    ]


class FilterModule:
    def filters(self):
        return {
            "topology": procurement_topology,
            "preflight": procurement_preflight,
            "argument_lines": procurement_argument_lines,
        }
