"""Configuration: one object read from the environment and a ``.env`` file.

The operations manual deploys with ``cp .env.example .env`` in the working
directory and troubleshoots with ``ConfigManager().validate()``, so both the
file and that call are the contract. Real environment variables win over the
file so that systemd units and containers can override single keys.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional
from urllib.parse import quote_plus, urlsplit

from dotenv import dotenv_values

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Setting:
    key: str
    default: str
    help: str
    secret: bool = False


# The single list of keys. .env.example documents the same keys and a test
# keeps the two in agreement.
SETTINGS: List[Setting] = [
    Setting("PROCUREMENT_DB_HOST", "localhost", "PostgreSQL host name or address"),
    Setting("PROCUREMENT_DB_PORT", "5432", "PostgreSQL port"),
    Setting("PROCUREMENT_DB_NAME", "procurement_db", "Database name"),
    Setting("PROCUREMENT_DB_USER", "procurement_user", "Database role the service logs in as"),
    Setting("PROCUREMENT_DB_PASSWORD", "", "Password of that role (required)", secret=True),
    Setting(
        "PROCUREMENT_DB_PASSWORD_PREVIOUS",
        "",
        "Password before the last rotation, tried when the current one is refused (optional)",
        secret=True,
    ),
    Setting("PROCUREMENT_DB_SSLMODE", "prefer", "libpq sslmode: " + ", ".join(SSL_MODES)),
    Setting("PROCUREMENT_DB_POOL_MIN", "5", "Connections kept open per process"),
    Setting("PROCUREMENT_DB_POOL_MAX", "20", "Most connections per process"),
    Setting("PROCUREMENT_DB_POOL_TIMEOUT", "30", "Seconds to wait for a free pooled connection"),
    Setting("PROCUREMENT_DB_CONNECT_TIMEOUT", "5", "Seconds to wait when opening a connection"),
    Setting(
        "PROCUREMENT_DB_PREPARED_STATEMENTS",
        "true",
        "Let the driver prepare repeated statements on the server; false behind PgBouncer "
        "in transaction mode (before 1.21)",
    ),
    Setting(
        "PROCUREMENT_REDIS_URL",
        "",
        "Redis URL such as redis://127.0.0.1:6379/0; empty means an in-process cache",
    ),
    Setting("PROCUREMENT_REDIS_PASSWORD", "", "Redis password, if Redis requires one", True),
    Setting("PROCUREMENT_SECRET_KEY", "", "Signs dashboard sessions; 32+ random chars", True),
    Setting(
        "PROCUREMENT_LOG_FILE",
        "/var/log/procurement/procurement.log",
        "JSON log file; empty logs to stderr only",
    ),
    Setting("PROCUREMENT_LOG_LEVEL", "INFO", "One of " + ", ".join(LOG_LEVELS)),
    Setting("PROCUREMENT_SLOW_REQUEST_SECONDS", "1.0", "Requests slower than this log 'slow'"),
    Setting("PROCUREMENT_CORS_ORIGINS", "", "Comma-separated allowed origins; empty allows none"),
    Setting(
        "PROCUREMENT_METRICS_ALLOWED_NETWORKS",
        "127.0.0.0/8,::1/128",
        "Comma-separated networks that may read /metrics",
    ),
    Setting(
        "PROCUREMENT_CACHE_ENABLED",
        "true",
        "Serve reads from the cache; false reads everything from the database",
    ),
    Setting("PROCUREMENT_CACHE_DEFAULT_TTL", "300", "Default cache lifetime in seconds"),
    Setting("PROCUREMENT_CACHE_MAX_SIZE", "1000", "Most entries in the in-process cache"),
    Setting("PROCUREMENT_CACHE_TTL_SUPPLIER_INFO", "3600", "Lifetime of supplier data"),
    Setting("PROCUREMENT_CACHE_TTL_ORDER_LIST", "60", "Lifetime of order list pages"),
    Setting("PROCUREMENT_CACHE_TTL_PERFORMANCE_DATA", "1800", "Lifetime of performance figures"),
    Setting("PROCUREMENT_METRICS_CACHE_SECONDS", "15", "How long /metrics reuses business figures"),
    Setting("PROCUREMENT_BIND", "127.0.0.1:8000", "host:port gunicorn listens on"),
    Setting("PROCUREMENT_WORKERS", "", "Gunicorn worker processes; empty means 2 x cores + 1"),
    Setting("PROCUREMENT_THREADS", "4", "Threads per gunicorn worker"),
    Setting("PROCUREMENT_STATIC_URL", "/static/", "URL prefix of the fingerprinted static files"),
    Setting(
        "PROCUREMENT_SESSION_COOKIE_SECURE",
        "true",
        "Send the dashboard cookie over HTTPS only; set false for plain-HTTP development",
    ),
    Setting(
        "PROMETHEUS_MULTIPROC_DIR",
        "",
        "Directory for multi-process metrics; empty means single process",
    ),
]

_KEYS = {s.key: s for s in SETTINGS}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(RuntimeError):
    """Raised when the service is asked to start with an invalid configuration."""


def _split_list(value: str) -> List[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class ConfigManager:
    """Typed view of the settings, plus ``validate()``.

    Values are parsed lazily so that a bad value is reported by ``validate()``
    instead of crashing whoever merely imports or constructs the object.
    """

    def __init__(
        self,
        environ: Optional[Mapping[str, str]] = None,
        env_file: Optional[str] = ".env",
    ) -> None:
        values: Dict[str, str] = {}
        if env_file and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        self._values = values
        self._problems: List[str] = []

    # -- raw access -------------------------------------------------------
    def raw(self, key: str) -> str:
        if key in self._values:
            return str(self._values[key]).strip()
        return _KEYS[key].default

    def _typed(self, key: str, parse: Callable[[str], Any], check=None) -> Any:
        value = self.raw(key)
        try:
            result = parse(value)
        except (TypeError, ValueError):
            self._problems.append(f"{key}={value!r} is not a valid value")
            return parse(_KEYS[key].default)
        if check is not None and not check(result):
            self._problems.append(f"{key}={value!r} is out of range")
            return parse(_KEYS[key].default)
        return result

    def _int(self, key: str, minimum: int = 0) -> int:
        return self._typed(key, int, lambda v: v >= minimum)

    # -- typed settings ---------------------------------------------------
    db_host = property(lambda self: self.raw("PROCUREMENT_DB_HOST"))
    db_port = property(lambda self: self._int("PROCUREMENT_DB_PORT", 1))
    db_name = property(lambda self: self.raw("PROCUREMENT_DB_NAME"))
    db_user = property(lambda self: self.raw("PROCUREMENT_DB_USER"))
    db_password = property(lambda self: self.raw("PROCUREMENT_DB_PASSWORD"))
    db_password_previous = property(lambda self: self.raw("PROCUREMENT_DB_PASSWORD_PREVIOUS"))
    db_sslmode = property(lambda self: self.raw("PROCUREMENT_DB_SSLMODE"))
    pool_min = property(lambda self: self._int("PROCUREMENT_DB_POOL_MIN", 1))
    pool_max = property(lambda self: self._int("PROCUREMENT_DB_POOL_MAX", 1))
    pool_timeout = property(lambda self: self._int("PROCUREMENT_DB_POOL_TIMEOUT", 1))
    connect_timeout = property(lambda self: self._int("PROCUREMENT_DB_CONNECT_TIMEOUT", 1))
    redis_url = property(lambda self: self.raw("PROCUREMENT_REDIS_URL"))
    redis_password = property(lambda self: self.raw("PROCUREMENT_REDIS_PASSWORD"))
    secret_key = property(lambda self: self.raw("PROCUREMENT_SECRET_KEY"))
    log_file = property(lambda self: self.raw("PROCUREMENT_LOG_FILE"))
    log_level = property(lambda self: self.raw("PROCUREMENT_LOG_LEVEL").upper())
    slow_request_seconds = property(
        lambda self: self._typed("PROCUREMENT_SLOW_REQUEST_SECONDS", float, lambda v: v > 0)
    )
    cors_origins = property(lambda self: _split_list(self.raw("PROCUREMENT_CORS_ORIGINS")))
    cache_default_ttl = property(lambda self: self._int("PROCUREMENT_CACHE_DEFAULT_TTL", 1))
    cache_max_size = property(lambda self: self._int("PROCUREMENT_CACHE_MAX_SIZE", 1))
    metrics_cache_seconds = property(lambda self: self._int("PROCUREMENT_METRICS_CACHE_SECONDS", 0))
    bind = property(lambda self: self.raw("PROCUREMENT_BIND"))
    threads = property(lambda self: self._int("PROCUREMENT_THREADS", 1))
    static_url = property(lambda self: self.raw("PROCUREMENT_STATIC_URL") or "/static/")
    multiproc_dir = property(lambda self: self.raw("PROMETHEUS_MULTIPROC_DIR"))

    def _bool(self, key: str) -> bool:
        """A true/false setting; an unreadable value is a problem and counts as the default."""
        value = self.raw(key).lower()
        if value not in _TRUE + _FALSE:
            self._problems.append(f"{key}={value!r} is not a boolean")
            return _KEYS[key].default.lower() in _TRUE
        return value in _TRUE

    session_cookie_secure = property(lambda self: self._bool("PROCUREMENT_SESSION_COOKIE_SECURE"))
    db_prepared_statements = property(lambda self: self._bool("PROCUREMENT_DB_PREPARED_STATEMENTS"))
    cache_enabled = property(lambda self: self._bool("PROCUREMENT_CACHE_ENABLED"))

    @property
    def db_connect_args(self) -> Dict[str, Any]:
        """Driver arguments beyond the URL: psycopg prepares a statement on the
        server after 5 runs, which a transaction-pooling PgBouncer (before 1.21)
        cannot follow, since the next transaction may run on another server
        connection; None switches that off."""
        return {} if self.db_prepared_statements else {"prepare_threshold": None}

    @property
    def workers(self) -> int:
        if not self.raw("PROCUREMENT_WORKERS"):
            return 2 * (os.cpu_count() or 1) + 1
        return self._int("PROCUREMENT_WORKERS", 1)

    @property
    def cache_ttls(self) -> Dict[str, int]:
        return {
            "default": self.cache_default_ttl,
            "supplier_info": self._int("PROCUREMENT_CACHE_TTL_SUPPLIER_INFO", 1),
            "order_list": self._int("PROCUREMENT_CACHE_TTL_ORDER_LIST", 1),
            "performance_data": self._int("PROCUREMENT_CACHE_TTL_PERFORMANCE_DATA", 1),
        }

    @property
    def metrics_allowed_networks(self) -> list:
        networks = []
        for part in _split_list(self.raw("PROCUREMENT_METRICS_ALLOWED_NETWORKS")):
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                self._problems.append(f"PROCUREMENT_METRICS_ALLOWED_NETWORKS: {part!r} is invalid")
        return networks

    @property
    def database_url(self) -> str:
        return (
            f"postgresql+psycopg://{quote_plus(self.db_user)}:{quote_plus(self.db_password)}"
            f"@{self.db_host}:{self.db_port}/{quote_plus(self.db_name)}"
            f"?sslmode={self.db_sslmode}&connect_timeout={self.connect_timeout}"
            "&application_name=procurement"
        )

    # -- validation -------------------------------------------------------
    def validate(self) -> List[str]:
        """Return every problem found; an empty list means the configuration is usable."""
        self._problems = []
        problems = self._problems
        # Touch every typed property so parse errors are collected.
        for name in (
            "db_port",
            "pool_min",
            "pool_max",
            "pool_timeout",
            "connect_timeout",
            "slow_request_seconds",
            "cache_default_ttl",
            "cache_max_size",
            "metrics_cache_seconds",
            "threads",
            "workers",
            "cache_ttls",
            "metrics_allowed_networks",
            "session_cookie_secure",
            "db_prepared_statements",
            "cache_enabled",
        ):
            getattr(self, name)
        for key in ("PROCUREMENT_DB_HOST", "PROCUREMENT_DB_NAME", "PROCUREMENT_DB_USER"):
            if not self.raw(key):
                problems.append(f"{key} must not be empty")
        if not self.db_password:
            problems.append("PROCUREMENT_DB_PASSWORD is not set")
        if self.db_sslmode not in SSL_MODES:
            problems.append(f"PROCUREMENT_DB_SSLMODE must be one of {', '.join(SSL_MODES)}")
        if self.pool_min > self.pool_max:
            problems.append("PROCUREMENT_DB_POOL_MIN is larger than PROCUREMENT_DB_POOL_MAX")
        if len(self.secret_key) < 16:
            problems.append("PROCUREMENT_SECRET_KEY is missing or shorter than 16 characters")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"PROCUREMENT_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if self.redis_url and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            problems.append("PROCUREMENT_REDIS_URL must start with redis://, rediss:// or unix://")
        host, _, port = self.bind.rpartition(":")
        if not host or not port.isdigit():
            problems.append(f"PROCUREMENT_BIND={self.bind!r} is not host:port")
        if not self.static_url.endswith("/"):
            problems.append("PROCUREMENT_STATIC_URL must end with '/'")
        problem = log_file_problem(self.log_file)
        if problem:
            problems.append(problem)
        if self.multiproc_dir and not os.path.isdir(self.multiproc_dir):
            problems.append(f"PROMETHEUS_MULTIPROC_DIR {self.multiproc_dir} is not a directory")
        return list(problems)

    def to_flask(self) -> Dict[str, Any]:
        """Flask config keys derived from the settings."""
        return {
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_URL": self.database_url,
            "SESSION_COOKIE_SECURE": self.session_cookie_secure,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "MAX_CONTENT_LENGTH": 1024 * 1024,
            "PROCUREMENT": self,
        }


def log_file_problem(path: str) -> Optional[str]:
    """Say why the log file can't be written, or None when it can."""
    if not path:
        return None
    target = Path(path)
    if target.exists():
        ok = target.is_file() and os.access(target, os.W_OK)
    else:
        ok = target.parent.is_dir() and os.access(target.parent, os.W_OK)
    if not ok:
        return f"PROCUREMENT_LOG_FILE {path} cannot be written; logging to stderr only"
    return None
