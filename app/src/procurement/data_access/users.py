"""Users and their token hashes."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from sqlalchemy import select

from procurement.data_access.core import db, fetch_all, fetch_one
from procurement.models import (
    User,
)

_USER_COLUMNS = (User.id, User.name, User.role, User.active, User.created_at)


def user_by_token_hash(token_hash: str) -> Optional[Dict[str, Any]]:
    return fetch_one(select(*_USER_COLUMNS).where(User.token_hash == token_hash))


def user_by_name(name: str) -> Optional[Dict[str, Any]]:
    return fetch_one(select(*_USER_COLUMNS).where(User.name == name))


def get_user(user_id: int) -> Optional[Dict[str, Any]]:
    return fetch_one(select(*_USER_COLUMNS).where(User.id == user_id))


def user_for_update(user_id: int) -> Optional[User]:
    return db.session.get(User, user_id, with_for_update=True)


def user_id_by_name(name: str) -> Optional[int]:
    row = fetch_one(select(User.id).where(User.name == name))
    return row["id"] if row else None


def other_active_admins(user_id: int) -> int:
    """Active admins other than ``user_id``, counted under a lock on their rows."""
    rows = db.session.execute(
        select(User.id)
        .where(User.role == "admin", User.active.is_(True), User.id != user_id)
        .with_for_update()
    )
    return len(rows.all())


def add_user(name: str, role: str, token_hash: str) -> User:
    user = User(name=name, role=role, token_hash=token_hash, active=True)
    db.session.add(user)
    db.session.flush()
    return user


def list_users() -> List[Dict[str, Any]]:
    return fetch_all(select(*_USER_COLUMNS).order_by(User.id))
