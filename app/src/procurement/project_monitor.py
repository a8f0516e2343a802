"""Prometheus metrics: HTTP figures, cache and pool figures, business figures.

HTTP latency comes from prometheus-flask-exporter with no name prefix, so the
manual's alert on ``http_request_duration_seconds_bucket`` matches; the
manual's error-rate alert counts ``http_requests_total{status=...}``, which
the exporter does not spell that way, so we keep that counter ourselves.

Under gunicorn every worker writes its samples to PROMETHEUS_MULTIPROC_DIR
and the worker that answers a scrape merges them. Business figures are not
per-process at all: they are read from the database at scrape time (cached a
few seconds), by whichever worker answers.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from typing import Any, Dict, Iterable, Optional

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_flask_exporter import NO_PREFIX, PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

from procurement import counters
from procurement.errors import ApiError
from procurement.services import reports as report_service

log = logging.getLogger(__name__)

bp = Blueprint("monitor", __name__)


class BusinessCollector:
    """Reads business figures from the database when /metrics is scraped."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._cached: Optional[Dict[str, Any]] = None
        self._cached_at = 0.0

    def _figures(self) -> Dict[str, Any]:
        ttl = self.app.config["PROCUREMENT"].metrics_cache_seconds
        if self._cached is None or time.monotonic() - self._cached_at >= ttl:
            self._cached = report_service.business_figures()
            self._cached_at = time.monotonic()
        return self._cached

    def collect(self) -> Iterable[Any]:
        up = GaugeMetricFamily(
            "procurement_business_metrics_up", "1 when business figures could be read"
        )
        try:
            figures = self._figures()
        except Exception as exc:  # a scrape must not fail because the DB did
            log.warning("business figures failed: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        orders = GaugeMetricFamily(
            "procurement_purchase_orders", "Purchase orders by status", labels=["status"]
        )
        for status, count in figures["orders_by_status"].items():
            orders.add_metric([status], count)
        yield orders
        perf = figures["supplier_performance"]
        for name, documentation, value in (
            (
                "procurement_order_processing_avg_seconds",
                "Mean approval-to-receipt time of orders received in the last 30 days",
                figures["order_processing"]["avg_seconds"],
            ),
            (
                "procurement_supplier_on_time_delivery_rate",
                "On-time delivery rate over all completed orders",
                perf["on_time_delivery_rate"],
            ),
            (
                "procurement_supplier_avg_lead_time_days",
                "Mean lead time in days over all completed orders",
                perf["avg_lead_time_days"],
            ),
            (
                "procurement_inventory_turnover",
                "Cost of goods issued / average inventory value, last 30 days",
                figures["inventory_turnover"]["turnover"],
            ),
        ):
            # A figure with nothing to measure yet (no completed order) reads 0.
            yield GaugeMetricFamily(name, documentation, value=value or 0)


class _Union:
    """Expose several registries as one collector (single-process mode)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self) -> Iterable[Any]:
        for registry in self.registries:
            yield from registry.collect()


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def init_app(app: Flask) -> None:
    options = {
        "defaults_prefix": NO_PREFIX,
        "group_by": "endpoint",
        "excluded_paths": ["^/metrics$", "^/static/"],
    }
    if multiprocess_enabled():
        # Serves nothing itself: the /metrics view below merges the worker files.
        exporter: PrometheusMetrics = GunicornPrometheusMetrics(app, **options)
    else:
        # A registry per app, so that tests may build many apps in one process.
        exporter = PrometheusMetrics(app, path=None, registry=CollectorRegistry(), **options)
    app.extensions["procurement_metrics"] = {
        "exporter": exporter,
        "business": BusinessCollector(app),
        "allowed": app.config["PROCUREMENT"].metrics_allowed_networks,
    }
    app.after_request(_count_request)
    app.register_blueprint(bp)


def _count_request(response: Response) -> Response:
    if request.endpoint in ("monitor.metrics", "web.static"):
        return response
    counters.HTTP_REQUESTS.labels(
        request.method, request.endpoint or "none", str(response.status_code)
    ).inc()
    return response


def _client_allowed() -> bool:
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        return False
    allowed = current_app.extensions["procurement_metrics"]["allowed"]
    return any(address in network for network in allowed)


@bp.route("/metrics")
def metrics() -> Response:
    """Prometheus scrape endpoint; internal networks only."""
    if not _client_allowed():
        raise ApiError(403, "forbidden", "metrics are only served to internal networks")
    state = current_app.extensions["procurement_metrics"]
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_enabled():
        MultiProcessCollector(registry)
    else:
        registry.register(_Union(state["exporter"].registry, REGISTRY))
    registry.register(state["business"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
