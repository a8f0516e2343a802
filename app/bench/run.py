"""Load benchmark: gunicorn as in production, on seeded PostgreSQL and Redis.

Starts throw-away PostgreSQL and Redis on loopback, seeds 10,000 suppliers
and 200,000 purchase orders with generate_series, runs the service with its
gunicorn configuration and drives it with wrk (bounded: a fixed duration per
case). Prints one ``RESULT`` line per case and a summary line.

Cases:
- ``health_live``: the floor, a request that touches neither cache nor database;
- ``open_orders_first_page`` and ``supplier_performance``: one URL each, primed,
  so nearly every request is a cache hit (the best case, not the typical one);
- ``read_mix``: a seeded random mix over order pages, status and supplier
  filters, supplier lists by category and the performance of any of the
  10,000 suppliers, starting from a cold cache: hits and misses as they come;
- ``read_mix_cache_off``: the same mix and seeds on a second gunicorn with
  PROCUREMENT_CACHE_ENABLED=false, every read from PostgreSQL;
- ``create_purchase_request``: writes.

Each case also prints the CPU time its servers spent per request, by tier
(``app_cpu_ms``: gunicorn; ``db_cpu_ms``: PostgreSQL; ``cache_cpu_ms``:
Redis), from /proc: what a request costs each host of a multi-host site,
which is what decides whether reads sent to a database replica would help
(docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

APP_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(APP_DIR / "tests"))

import servers  # noqa: E402
from procurement import migrate  # noqa: E402
from servers import PostgresServer, RedisServer, stop_gunicorn  # noqa: E402

DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
SUPPLIERS = int(os.environ.get("BENCH_SUPPLIERS", "10000"))
ORDERS = int(os.environ.get("BENCH_ORDERS", "200000"))
TOKENS = {
    "admin": ("bench-admin", "admin"),
    "requester": ("bench-requester", "requester"),
}

SEED_SQL = """
INSERT INTO users (name, role, token_hash) VALUES
    ('bench-admin', 'admin', %(admin_hash)s),
    ('bench-requester', 'requester', %(requester_hash)s),
    ('seed-approver', 'approver', md5('a')),
    ('seed-buyer', 'buyer', md5('b'));
INSERT INTO suppliers (name, category, contact, status)
    SELECT 'Supplier ' || g, 'category-' || (g %% 50), 'supplier' || g || '@example.com', 'active'
    FROM generate_series(1, %(suppliers)s) g;
INSERT INTO items (sku, name, unit_cost, quantity_on_hand)
    SELECT 'SKU-' || g, 'Item ' || g, (g %% 100) + 1, 100000 FROM generate_series(1, 200) g;
INSERT INTO purchase_requests (requester, justification, status, created_at, submitted_at, decided_at, decided_by)
    SELECT 'bench-requester', 'seed', 'approved', ts, ts, ts + interval '1 hour', 'seed-approver'
    FROM (SELECT g, now() - (%(orders)s - g) * interval '150 seconds' AS ts
          FROM generate_series(1, %(orders)s) g) s;
INSERT INTO purchase_request_lines (request_id, line_no, item_id, quantity, estimated_unit_price)
    SELECT id, 1, (id %% 200) + 1, (id %% 10) + 1, 10 FROM purchase_requests;
INSERT INTO purchase_orders (request_id, supplier_id, buyer, status, expected_delivery_date,
                             approved_at, created_at, received_at, delivered_on)
    SELECT r.id, (r.id %% %(suppliers)s) + 1, 'seed-buyer',
           CASE WHEN r.id %% 20 = 0 THEN 'issued'
                WHEN r.id %% 20 = 1 THEN 'partially_received'
                WHEN r.id %% 20 = 2 THEN 'cancelled'
                WHEN r.id %% 20 < 10 THEN 'closed'
                ELSE 'received' END,
           (r.decided_at + interval '7 days')::date,
           r.decided_at,
           r.decided_at + interval '10 minutes',
           CASE WHEN r.id %% 20 >= 3 THEN r.decided_at + interval '6 days' END,
           CASE WHEN r.id %% 20 >= 3 THEN (r.decided_at + (5 + r.id %% 4) * interval '1 day')::date END
    FROM purchase_requests r;
INSERT INTO purchase_order_lines (order_id, line_no, item_id, quantity, unit_price, received_quantity)
    SELECT o.id, 1, (o.id %% 200) + 1, (o.id %% 10) + 1, 10,
           CASE WHEN o.status IN ('received', 'closed') THEN (o.id %% 10) + 1
                WHEN o.status = 'partially_received' THEN 0.5 ELSE 0 END
    FROM purchase_orders o;
UPDATE suppliers s SET completed_orders = a.n, on_time_delivery_rate = a.rate, avg_lead_time_days = a.lead
    FROM (SELECT supplier_id, count(*) AS n,
                 avg(CASE WHEN delivered_on <= expected_delivery_date THEN 1.0 ELSE 0.0 END) AS rate,
                 avg(delivered_on - created_at::date) AS lead
          FROM purchase_orders WHERE status IN ('received', 'closed') GROUP BY supplier_id) a
    WHERE s.id = a.supplier_id;
ANALYZE;
"""

POST_LUA = """
wrk.method = "POST"
wrk.body = '{"justification": "bench", "lines": [{"item_id": 1, "quantity": 2, "estimated_unit_price": 3.5}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


# A random read mix, the same sequence for every run (seeded per wrk thread).
MIX_LUA = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  math.randomseed(1000 + id)
end
local statuses = {"issued", "partially_received", "received", "closed", "cancelled"}
local auth = {Authorization = "Bearer %(token)s"}
function request()
  local r = math.random(1, 100)
  local path
  if r <= 30 then
    path = "/api/v1/orders?page=" .. math.random(1, 50)
  elseif r <= 45 then
    path = "/api/v1/orders?status=" .. statuses[math.random(1, #statuses)] .. "&page=" .. math.random(1, 10)
  elseif r <= 60 then
    path = "/api/v1/orders?supplier_id=" .. math.random(1, %(suppliers)d)
  elseif r <= 70 then
    path = "/api/v1/orders?open=true&page=" .. math.random(1, 20)
  elseif r <= 90 then
    path = "/api/v1/suppliers/" .. math.random(1, %(suppliers)d) .. "/performance"
  else
    path = "/api/v1/suppliers?category=category-" .. math.random(0, 49) .. "&page=" .. math.random(1, 5)
  end
  return wrk.format("GET", path, auth)
end
"""


def seed(pg: PostgresServer, tokens: dict) -> float:
    started = time.monotonic()
    url = pg.create_database()
    migrate.upgrade(url=url)
    params = {
        "admin_hash": hashlib.sha256(tokens["admin"].encode()).hexdigest(),
        "requester_hash": hashlib.sha256(tokens["requester"].encode()).hexdigest(),
        "suppliers": SUPPLIERS,
        "orders": ORDERS,
    }
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in SEED_SQL.split(";\n"):
            if statement.strip():
                conn.execute(statement, params)
        count = conn.execute("SELECT count(*) FROM purchase_orders").fetchone()[0]
        assert count == ORDERS, count
    return time.monotonic() - started


def process_tree_cpu(roots: dict) -> dict:
    """CPU seconds spent so far by each named process tree ({tier: root pid}), from /proc.

    A live process's own user and system time, plus what its reaped
    children spent (cutime, cstime): a PostgreSQL backend that has ended is
    counted in the postmaster's, one still running in its own.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents, spent = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended while listed
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        spent[pid] = sum(int(f) for f in fields[11:15]) / tick
    totals = {}
    for tier, root in roots.items():
        total = 0.0
        for pid in spent:
            ancestor = pid
            while ancestor not in (root, 0, 1) and ancestor in parents:
                ancestor = parents[ancestor]
            if ancestor == root:
                total += spent[pid]
        totals[tier] = total
    return totals


def postmaster_pid(pg: PostgresServer) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, headers=(), script=None, servers_cpu=None) -> dict:
    """One case: wrk's rate, latency and errors, and with ``servers_cpu`` ({tier: root pid}) the servers'
    CPU milliseconds per request by tier."""
    before = process_tree_cpu(servers_cpu) if servers_cpu else {}
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", "--timeout", "5s"]
    for header in headers:
        cmd += ["-H", header]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if sockets:
        errors += sum(int(x) for x in sockets.groups())
    result = {"rps": rps, "p50": p50, "p99": p99, "errors": errors}
    if servers_cpu:
        after = process_tree_cpu(servers_cpu)
        requests_done = int(re.search(r"(\d+) requests in", out).group(1))
        result["cpu_ms"] = {
            tier: 1000 * (after[tier] - before[tier]) / max(requests_done, 1)
            for tier in servers_cpu
        }
    return result


def cache_counts(base: str) -> dict:
    text = requests.get(base + "/metrics", timeout=30).text
    counts = {"hit": 0.0, "miss": 0.0, "bypass": 0.0}
    for match in re.finditer(
        r'^procurement_cache_requests_total\{[^}]*result="(\w+)"[^}]*\}\s+([\d.e+]+)', text, re.M
    ):
        counts[match.group(1)] = counts.get(match.group(1), 0.0) + float(match.group(2))
    return counts


def start_gunicorn(workdir: Path, name: str, env: dict) -> tuple[subprocess.Popen, str]:
    """gunicorn with the production configuration, its log and metrics folder named after the case."""
    metrics_dir = workdir / f"metrics-{name}"
    metrics_dir.mkdir()
    env = {
        **env,
        "PROCUREMENT_LOG_FILE": str(workdir / f"procurement-{name}.log"),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    return servers.start_gunicorn(workdir, env, name=f"gunicorn-{name}")


def hit_rate(before: dict, after: dict) -> float:
    hits = after["hit"] - before["hit"]
    lookups = hits + (after["miss"] - before["miss"]) + (after["bypass"] - before["bypass"])
    return hits / lookups if lookups else 0.0


def main() -> None:
    tokens = {
        "admin": "bench-admin-token-" + "a" * 30,
        "requester": "bench-requester-token-" + "r" * 30,
    }
    workdir = Path(tempfile.mkdtemp(prefix="procurement-bench-"))
    with PostgresServer() as pg, RedisServer() as redis_server:
        seconds = seed(pg, tokens)
        print(f"seeded {SUPPLIERS} suppliers and {ORDERS} orders in {seconds:.1f}s", flush=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PROCUREMENT_")},
            **pg.settings(),
            "PROCUREMENT_REDIS_URL": redis_server.url,
            "PROCUREMENT_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        }
        mix = workdir / "mix.lua"
        mix.write_text(MIX_LUA % {"token": tokens["admin"], "suppliers": SUPPLIERS})
        results, rates = {}, {}
        server, base = start_gunicorn(workdir, "cached", env)
        tiers = {"app": server.pid, "db": postmaster_pid(pg), "cache": redis_server.proc.pid}
        try:
            auth = f"Authorization: Bearer {tokens['admin']}"
            orders_url = base + "/api/v1/orders?open=true"
            supplier_url = base + "/api/v1/suppliers/4242/performance"
            results["health_live"] = wrk(base + "/health/live", servers_cpu=tiers)
            # The mix first, on a cold cache.
            before = cache_counts(base)
            results["read_mix"] = wrk(base + "/api/v1/orders", script=str(mix), servers_cpu=tiers)
            rates["read_mix"] = hit_rate(before, cache_counts(base))
            for url in (orders_url, supplier_url):
                assert requests.get(
                    url, headers={"Authorization": auth.split(": ")[1]}, timeout=30
                ).ok
            before = cache_counts(base)
            results["open_orders_first_page"] = wrk(orders_url, [auth], servers_cpu=tiers)
            results["supplier_performance"] = wrk(supplier_url, [auth], servers_cpu=tiers)
            rates["primed_single_urls"] = hit_rate(before, cache_counts(base))
            script = workdir / "post.lua"
            script.write_text(POST_LUA % tokens["requester"])
            results["create_purchase_request"] = wrk(
                base + "/api/v1/requests", script=str(script), servers_cpu=tiers
            )
        finally:
            stop_gunicorn(server)
        server, base = start_gunicorn(
            workdir, "uncached", {**env, "PROCUREMENT_CACHE_ENABLED": "false"}
        )
        tiers = {**tiers, "app": server.pid}
        try:
            results["read_mix_cache_off"] = wrk(
                base + "/api/v1/orders", script=str(mix), servers_cpu=tiers
            )
        finally:
            stop_gunicorn(server)
        for name, r in results.items():
            rate = f" cache_hit_rate={rates[name]:.4f}" if name in rates else ""
            cpu = "".join(f" {tier}_cpu_ms={ms:.3f}" for tier, ms in r["cpu_ms"].items())
            print(
                f"RESULT case={name} rps={r['rps']:.1f} p50_ms={r['p50']:.2f} "
                f"p99_ms={r['p99']:.2f} errors={r['errors']}{rate}{cpu}",
                flush=True,
            )
        ratio = results["open_orders_first_page"]["rps"] / results["health_live"]["rps"]
        mix_ratio = results["read_mix"]["rps"] / results["health_live"]["rps"]
        cache_gain = results["read_mix"]["rps"] / results["read_mix_cache_off"]["rps"]
        write_ratio = results["create_purchase_request"]["rps"] / results["health_live"]["rps"]
        print(
            f"RESULT case=summary order_list_to_live_ratio={ratio:.2f} read_mix_to_live_ratio={mix_ratio:.2f} "
            f"create_to_live_ratio={write_ratio:.2f} "
            f"read_mix_cache_speedup={cache_gain:.2f} read_mix_cache_hit_rate={rates['read_mix']:.4f} "
            f"primed_cache_hit_rate={rates['primed_single_urls']:.4f}",
            flush=True,
        )
        # What a replica could take off the leader: the database's share of a read's CPU, with the cache
        # (hits and misses as they come) and without it (every read a query).
        for name in ("read_mix", "read_mix_cache_off"):
            cpu = results[name]["cpu_ms"]
            print(
                f"RESULT case=replica_reads mix={name} db_share_of_cpu={cpu['db'] / sum(cpu.values()):.3f} "
                f"app_cpu_ms={cpu['app']:.3f} db_cpu_ms={cpu['db']:.3f} "
                f"app_to_db_cpu={cpu['app'] / max(cpu['db'], 1e-9):.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
