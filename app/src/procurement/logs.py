"""JSON log lines to a file and to stderr, each carrying the request id.

The manual greps the log for "error|exception|failed" and for "slow", so
those words appear in the messages themselves, not only in a level field.
A log file that cannot be opened must not stop the service: it then logs to
stderr only (``config validate`` reports the problem).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import sys
import time
import uuid
from typing import Any, Dict

from flask import Flask, g, has_request_context, request

_HANDLER_TAG = "_procurement_handler"
_REQUEST_ID_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
access_log = logging.getLogger("procurement.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: Dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            entry["request_id"] = getattr(g, "request_id", None)
        for key in ("method", "path", "status", "duration_ms", "remote_addr", "user"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str, log_file: str) -> None:
    """Install the JSON handlers on the root logger, once per process."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()
    handlers: list = [logging.StreamHandler(sys.stderr)]
    file_error = None
    if log_file:
        try:
            # WatchedFileHandler reopens the file after logrotate moves it.
            handlers.append(logging.handlers.WatchedFileHandler(log_file, encoding="utf-8"))
        except OSError as exc:
            file_error = exc
    formatter = JsonFormatter()
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _HANDLER_TAG, True)
        root.addHandler(handler)
    root.setLevel(level)
    if file_error is not None:
        logging.getLogger(__name__).error(
            "log file %s failed to open (%s); logging to stderr only", log_file, file_error
        )


def init_app(app: Flask) -> None:
    cfg = app.config["PROCUREMENT"]
    configure(cfg.log_level if cfg.log_level in logging._nameToLevel else "INFO", cfg.log_file)
    slow_after = cfg.slow_request_seconds

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        if 0 < len(incoming) <= 128 and set(incoming) <= _REQUEST_ID_OK:
            g.request_id = incoming
        else:
            g.request_id = uuid.uuid4().hex

    @app.after_request
    def _finish(response):
        request_id = getattr(g, "request_id", None) or uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        started = getattr(g, "started", None)
        duration = time.perf_counter() - started if started is not None else 0.0
        extra = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(duration * 1000, 2),
            "remote_addr": request.remote_addr,
        }
        actor = getattr(g, "actor", None)
        if actor:
            extra["user"] = actor["name"]
        if duration > slow_after:
            access_log.warning(
                "slow request %s %s took %.3fs", request.method, request.path, duration, extra=extra
            )
        elif response.status_code >= 500:
            access_log.error("request failed %s %s", request.method, request.path, extra=extra)
        else:
            access_log.debug("request %s %s", request.method, request.path, extra=extra)
        return response
