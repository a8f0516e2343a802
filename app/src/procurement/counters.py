"""The service's own Prometheus metrics, as objects the other modules count on.

This module imports nothing of the app, so that any module may count
without importing the monitoring blueprint (project_monitor), which reads
the business figures and so sits above the business modules.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, endpoint and status",
    ("method", "endpoint", "status"),
)
ERRORS = Counter("procurement_errors_total", "Error responses, by error code", ("code", "status"))
CACHE_REQUESTS = Counter(
    "procurement_cache_requests_total",
    "Cache look-ups by strategy and result (hit, miss, bypass while degraded, off when disabled)",
    ("strategy", "result"),
)
CACHE_DEGRADED = Gauge(
    "procurement_cache_degraded",
    "1 while the configured Redis cache is unreachable",
    multiprocess_mode="livemax",
)
DB_POOL_IN_USE = Gauge(
    "procurement_db_pool_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)
DB_POOL_OPEN = Gauge(
    "procurement_db_pool_connections_open",
    "Database connections held open by the pool",
    multiprocess_mode="livesum",
)
ORDER_PROCESSING = Histogram(
    "procurement_order_processing_seconds",
    "Time from request approval to full receipt of its order",
    buckets=(3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400),
)
