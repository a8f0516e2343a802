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
from procurement.services.common import Actor, found, require_role


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


def user_id(name: str) -> int:
    """The id of the user called ``name`` (404 if there is none)."""
    return found(users_data.user_id_by_name(name), "user", name)


def set_active(actor: Actor, user_id: int, active: bool) -> Dict[str, Any]:
    """Activate or deactivate a user; a deactivated user's token is refused from the next request.

    The last active admin cannot be deactivated (nobody could manage users any more).
    """
    require_role(actor, "admin")
    with store.transaction():
        user = found(users_data.user_for_update(user_id), "user", user_id)
        if (
            user.active
            and not active
            and user.role == "admin"
            and users_data.other_active_admins(user_id) == 0
        ):
            raise conflict("cannot deactivate the last active admin", "last_admin")
        if user.active != active:
            user.active = active
            store.add_audit(actor["name"], "activate" if active else "deactivate", "user", user_id)
    # Every worker (and, with Redis, every node) reads the user anew.
    cache.bump("users")
    return users_data.get_user(user_id)


def new_user_token(actor: Actor, user_id: int) -> Tuple[Dict[str, Any], str]:
    """Give a user a new token; the old one is refused from the next request on."""
    require_role(actor, "admin")
    token = new_token()
    with store.transaction():
        user = found(users_data.user_for_update(user_id), "user", user_id)
        user.token_hash = hash_token(token)
        store.add_audit(actor["name"], "new_token", "user", user_id)
    cache.bump("users")
    return users_data.get_user(user_id), token


def revoke_user_token(actor: Actor, user_id: int) -> Dict[str, Any]:
    """Revoke a user's token without a new one: the user cannot sign in until given one."""
    require_role(actor, "admin")
    with store.transaction():
        user = found(users_data.user_for_update(user_id), "user", user_id)
        # A hash of a token nobody ever sees: no token matches it.
        user.token_hash = hash_token(new_token())
        store.add_audit(actor["name"], "revoke_token", "user", user_id)
    cache.bump("users")
    return users_data.get_user(user_id)
