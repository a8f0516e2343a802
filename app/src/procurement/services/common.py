"""What every business module shares: the actor, role checks, lookups and cached reads."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, TypeVar

from procurement.cache import cache
from procurement.errors import ApiError, conflict, not_found

Actor = Dict[str, Any]
T = TypeVar("T")


Render = Optional[Callable[[Any], bytes]]


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def require_role(actor: Actor, *roles: str) -> None:
    if actor["role"] not in roles:
        raise ApiError(
            403,
            "forbidden",
            f"role {actor['role']!r} may not do this",
            {"allowed_roles": list(roles)},
        )


def cached(strategy: str, namespaces: Tuple[str, ...], key: str, compute, render: Render):
    """Cache the data, or with ``render`` its final representation (skips re-rendering hits)."""
    if render is None:
        return cache.get_or_set(strategy, namespaces, key, compute)
    return cache.get_or_set(strategy, namespaces, "r:" + key, lambda: render(compute()))


def cache_key(args: Dict[str, Any]) -> str:
    parts = []
    for name in sorted(args):
        value = args[name]
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, sorted(value)))
        elif isinstance(value, (dt.date, dt.datetime)):
            value = value.isoformat()
        parts.append(f"{name}={value}")
    return hashlib.sha256("&".join(parts).encode()).hexdigest()[:32]


def found(row: Optional[T], entity: str, entity_id: Any) -> T:
    """``row`` as read, or the 404 that names what was missing."""
    if row is None:
        raise not_found(entity, entity_id)
    return row


def in_state(row: Any, allowed_from: Sequence[str], action: str, what: str) -> None:
    """409 unless ``row`` (read ``FOR UPDATE``) is in one of ``allowed_from``."""
    if row.status not in allowed_from:
        raise conflict(
            f"cannot {action} {what} that is {row.status}",
            "invalid_state",
            status=row.status,
        )
