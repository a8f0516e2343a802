"""Bearer-token authentication for the API.

Tokens are random 256-bit strings handed out once; only their SHA-256 is
stored, so a leaked database does not leak working credentials. A fast hash
is enough because the tokens have full entropy (nothing to brute-force).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from flask import g, request

from procurement.errors import ApiError
from procurement.services import users as user_service

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="procurement"'}


def bearer_token() -> Optional[str]:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_auth() -> None:
    """before_request hook of the API blueprint: every API call needs a valid token."""
    if request.method == "OPTIONS":
        return
    token = bearer_token()
    if token is None:
        raise ApiError(401, "unauthorized", "a bearer token is required", headers=CHALLENGE)
    actor = user_service.authenticate(token)
    if actor is None:
        raise ApiError(401, "unauthorized", "the token is not valid", headers=CHALLENGE)
    g.actor = actor


def current_actor() -> Dict[str, Any]:
    return g.actor
