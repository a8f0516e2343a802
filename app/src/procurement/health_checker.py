"""Liveness and readiness for load balancers, systemd checks and deploy tools.

Liveness says only that the process answers. Readiness says the service can
do its job: the database answers and carries the schema this code expects
(the latest Alembic head, so a deploy can wait for migrations), and the
configured Redis answers. Redis is optional, so its loss makes the service
"degraded", not unready.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Dict, Tuple

from alembic.script import ScriptDirectory
from flask import Blueprint, jsonify
from sqlalchemy.exc import SQLAlchemyError

from procurement.cache import cache
from procurement.data_access import core as store

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__, url_prefix="/health")


@functools.lru_cache(maxsize=1)
def expected_revision() -> str:
    from procurement.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return heads[0]


def readiness() -> Tuple[Dict[str, Any], bool]:
    checks: Dict[str, Any] = {}
    ready = True
    try:
        store.ping()
        revision = store.schema_revision()
    except SQLAlchemyError as exc:
        checks["database"] = {"ok": False, "error": exc.__class__.__name__}
        checks["schema"] = {"ok": False, "error": "database unavailable"}
        ready = False
    else:
        checks["database"] = {"ok": True}
        expected = expected_revision()
        checks["schema"] = {"ok": revision == expected, "current": revision, "expected": expected}
        ready = ready and revision == expected
    checks["cache"] = cache.status()
    degraded = not checks["cache"]["ok"]
    status = "unready" if not ready else ("degraded" if degraded else "ok")
    return {"status": status, "checks": checks}, ready


@bp.route("/live")
def live():
    return jsonify({"status": "ok"})


@bp.route("/ready")
def ready():
    body, is_ready = readiness()
    if not is_ready:
        log.warning("readiness check failed: %s", body["checks"])
    return jsonify(body), 200 if is_ready else 503
