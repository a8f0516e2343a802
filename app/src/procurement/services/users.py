"""Users and bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy.exc import IntegrityError

from procurement.cache import cache
from procurement.data_access import core as store
from procurement.data_access import users as users_data
from procurement.errors import ApiError, conflict
from procurement.models import (
    ROLES,
)
from procurement.services.common import Actor


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def authenticate(token: str) -> Optional[Actor]:
    """Resolve a bearer token to an active user, or None."""
    if not token or len(token) > 512:
        return None
    token_hash = hash_token(token)
    # The hash, never the token, is the cache key.
    user = cache.get_or_set("default", ("users",), "token:" + token_hash, lambda: _user(token_hash))
    if not user or not user.get("active"):
        return None
    return user


def _user(token_hash: str) -> Optional[Dict[str, Any]]:
    return users_data.user_by_token_hash(token_hash)


def create_user(actor_name: str, name: str, role: str, token: Optional[str] = None) -> Tuple:
    """Create a user and return it with its token, which is shown only this once."""
    if role not in ROLES:
        raise ApiError(422, "validation_error", "unknown role", {"role": [f"one of {ROLES}"]})
    token = token or new_token()
    if len(token) < 20:
        raise ApiError(422, "validation_error", "token too short", {"token": ["20+ characters"]})
    try:
        with store.transaction():
            if users_data.user_by_name(name) is not None:
                raise conflict(f"user {name!r} already exists", "user_exists")
            user = users_data.add_user(name, role, hash_token(token))
            store.add_audit(actor_name, "create", "user", user.id, name=name, role=role)
    except IntegrityError:
        raise conflict(f"user {name!r} or its token already exists", "user_exists") from None
    cache.bump("users")
    return users_data.user_by_name(name), token


def ensure_user(name: str, role: str, token: Optional[str]) -> Tuple:
    """Idempotent create for automation: returns (user, token or None, created)."""
    existing = users_data.user_by_name(name)
    if existing is not None:
        return existing, None, False
    user, token = create_user("cli", name, role, token)
    return user, token, True


def list_users() -> List[Dict[str, Any]]:
    return users_data.list_users()
