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
}
# The inventory groups of the bundle.
TIERS = ("web", "app", "db", "db_replica", "cache", "monitoring", "backup")

# Other settings of the roles that the wiring needs.
OWNED = {"app_home": "app", "nginx_stub_status_listen": "nginx"}

# The site itself: Nginx serves HTTP (redirects) and HTTPS to everyone.
SITE_PORTS = ((80, "HTTP"), (443, "HTTPS"))

# Prometheus jobs: the groups each one scrapes and the port it reads.
SCRAPE_JOBS = (
    ("node", ("all",), "node_exporter"),
    ("postgresql", ("db", "db_replica"), "postgres_exporter"),
    ("redis", ("cache",), "redis_exporter"),
    ("nginx", ("web",), "nginx_exporter"),
    ("procurement", ("app",), "app"),
)


class Topology:
    """The deployment as one host sees it."""

    def __init__(self, groups, hostvars, host, roles_dir, settings):
        self.groups = groups
        self.hostvars = hostvars
        self.host = host
        self.members = list(settings.get("hosts") or groups.get("all", []))
        self.pgbouncer = bool(settings.get("pgbouncer"))
        self.backup_from_replica = bool(settings.get("backup_from_replica"))
        self._defaults = _role_defaults(Path(roles_dir))

    # Inventory facts -----------------------------------------------------

    def tier(self, name):
        """Hosts of a group that belong to this host's deployment, in inventory order."""
        hosts = self.groups.get(name) or []
        return [host for host in hosts if host in self.members]

    def address(self, host):
        return str(self.hostvars[host]["procurement_private_address"])

    def addresses(self, hosts):
        return [self.address(host) for host in hosts]

    def others(self, hosts):
        return [host for host in hosts if host != self.host]

    def owned(self, host, variable, role):
        """A role's variable for a host: its inventory value, else the role's default."""
        value = self.hostvars[host].get(variable) if host in self.hostvars else None
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
        replicas, cache, backup = self.tier("db_replica"), self.tier("cache"), self.tier("backup")
        monitoring = self.tier("monitoring")
        primary = db[0] if db else ""
        # Backups read the primary, or the first replica with backup_from_replica.
        backup_source = ((replicas if self.backup_from_replica else []) + db + [""])[0]

        peers = {
            "app": self.addresses(self.others(app)),
            "web": self.addresses(self.others(web)),
            "monitoring": self.addresses(self.others(monitoring)),
            "backup": self.others(backup),
            "db_replica": self.others(replicas),
        }
        # Hosts that log in to the app database here: app nodes reach the
        # primary (unless PgBouncer pools them), backup hosts the host they dump.
        clients = (app if me in db and not self.pgbouncer else []) + (backup if me == backup_source else [])
        peers["db_clients"] = self.addresses(_unique(self.others(clients)))
        # The database port also answers the primary's replicas.
        peers["db"] = _unique(peers["db_clients"] + (self.addresses(self.others(replicas)) if me in db else []))
        peers["pgbouncer"] = self.addresses(self.others(app)) if self.pgbouncer and me in db else []

        ports = {name: self.port(me, name) for name in PORTS}
        exporter_address = self.address(me) if peers["monitoring"] else "127.0.0.1"
        return {
            "hosts": self.members,
            "tiers": {name: self.tier(name) for name in TIERS},
            "ports": ports,
            "primary": primary,
            "primary_address": self.address(primary) if primary else "",
            "replicas": [{"name": host, "address": self.address(host)} for host in self.others(replicas)],
            "peers": peers,
            "database": self._database_endpoint(primary, pool=self.pgbouncer),
            "restore_target": self._database_endpoint(me if me in db or not primary else primary, pool=False),
            "backup_source": backup_source,
            "backup_database": self._database_endpoint(
                me if me in db and not self.backup_from_replica else backup_source, pool=False
            ),
            "cache_url": self._cache_url(cache),
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
            "firewall_rules": self._firewall_rules(peers, ports, app, db + replicas, cache, web),
            "scrape_jobs": self._scrape_jobs(exporter_address),
        }

    def _database_endpoint(self, server, pool):
        """How this host reaches the app database on a server (inventory name)."""
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

    def _firewall_rules(self, peers, ports, app, databases, cache, web):
        me = self.host
        rules = [{"port": port, "comment": comment} for port, comment in SITE_PORTS] if me in web else []

        def allow(port, sources, comment):
            if sources:
                rules.append({"port": port, "sources": sources, "comment": comment})

        if me in databases:
            allow(ports["postgresql"], peers["db"], "PostgreSQL from app nodes, replicas and backup hosts")
        allow(ports["pgbouncer"], peers["pgbouncer"], "PgBouncer from app nodes")
        if me in cache:
            allow(ports["redis"], peers["app"], "Redis from app nodes")
        if me in app:
            allow(ports["app"], peers["web"], "gunicorn from the load balancers")
        watched = [("node_exporter", "node_exporter", True)]
        watched += [
            ("postgres_exporter", "postgres_exporter", me in databases),
            ("redis_exporter", "redis_exporter", me in cache),
            ("nginx_exporter", "nginx exporter", me in web),
            ("app", "app /metrics", me in app),
        ]
        for name, what, applies in watched:
            if applies:
                allow(ports[name], peers["monitoring"], f"{what} from monitoring hosts")
        return rules

    def _scrape_jobs(self, exporter_address):
        """One static config per watched host, labelled with its inventory name."""
        jobs = []
        for job_name, job_groups, port_name in SCRAPE_JOBS:
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
            if configs:
                jobs.append({"job_name": job_name, "static_configs": configs})
        return jobs


def _unique(items):
    return list(dict.fromkeys(items))


def _role_defaults(roles_dir):
    defaults = {}
    for role in {role for _, role in PORTS.values()} | set(OWNED.values()):
        path = roles_dir / role / "defaults" / "main.yml"
        defaults[role] = yaml.safe_load(path.read_text()) or {}
    return defaults


def procurement_topology(groups, hostvars, host, roles_dir, settings=None):
    """The topology of the deployment as ``host`` sees it (see the module's docstring)."""
    return Topology(groups, hostvars, host, roles_dir, settings or {}).decide()


class FilterModule:
    def filters(self):
        return {"procurement_topology": procurement_topology}
