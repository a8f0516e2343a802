"""Every error leaves the service in one JSON shape, from this one place.

``{"error": {"code": "...", "message": "...", "details": {...}}}``: clients,
the dashboard and the tests can rely on it whatever failed, be it a
validation error from flask-smorest, an unknown route, a lost database or a
bug.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import marshmallow as ma
from flask import Flask, jsonify
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from procurement import counters

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An expected failure with an HTTP status and a stable machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def not_found(entity: str, entity_id: Any) -> ApiError:
    return ApiError(404, "not_found", f"{entity} {entity_id} does not exist")


def conflict(message: str, code: str = "conflict", **details: Any) -> ApiError:
    return ApiError(409, code, message, details)


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "Stable error code"})
    message = ma.fields.String(required=True)
    details = ma.fields.Dict(required=True, metadata={"description": "Field errors or context"})


class ErrorSchema(ma.Schema):
    """Documents the error shape in the OpenAPI document."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


def error_response(status: int, code: str, message: str, details: Any = None, headers: Any = None):
    counters.ERRORS.labels(code, str(status)).inc()
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _code_for(error: HTTPException) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        415: "unsupported_media_type",
        422: "validation_error",
        429: "too_many_requests",
    }.get(error.code or 500, (error.name or "error").lower().replace(" ", "_"))


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    details = data.get("errors") or data.get("messages") or {}
    message = data.get("message") or error.description or error.name
    headers = {
        name: value
        for name, value in error.get_headers()
        if name.lower() in ("allow", "www-authenticate", "retry-after")
    }
    headers.update(data.get("headers") or {})
    if status == 400 and not details and "JSON" in (error.description or ""):
        details = {"json": ["The request body is not valid JSON."]}
    return error_response(status, _code_for(error), message, details, headers)


def handle_api_error(error: ApiError):
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def handle_database_error(error: Exception):
    log.error("database error: %s", error)
    return error_response(
        503,
        "database_unavailable",
        "The database is unavailable; retry shortly.",
        headers={"Retry-After": "5"},
    )


def handle_integrity_error(error: sa_exc.IntegrityError):
    log.warning("integrity error: %s", error.orig)
    return error_response(409, "conflict", "The change conflicts with existing data.")


def handle_unexpected(error: Exception):
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    log.exception("unhandled exception: %s", error)
    return error_response(500, "internal_error", "An unexpected error occurred.")


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(sa_exc.IntegrityError, handle_integrity_error)
    for exc_type in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.register_error_handler(exc_type, handle_database_error)
    app.register_error_handler(sa_exc.DBAPIError, _dbapi_error)
    app.register_error_handler(Exception, handle_unexpected)


def _dbapi_error(error: sa_exc.DBAPIError):
    if error.connection_invalidated:
        return handle_database_error(error)
    return handle_unexpected(error)
