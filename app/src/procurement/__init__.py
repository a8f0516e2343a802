"""Procurement service: purchase requests, orders, suppliers and inventory."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, Mapping, Optional, Union

from flask import Flask

try:
    __version__ = version("procurement")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def create_app(config: Optional[Union[Mapping[str, Any], Any]] = None) -> Flask:
    """Build the application.

    ``config`` is a ConfigManager, or a mapping of settings (as in ``.env``)
    that replaces the environment entirely, which is what tests want.
    """
    from procurement import errors, health_checker, logs, project_monitor, web
    from procurement.config_manager import ConfigError, ConfigManager
    from procurement.extensions import Api, IdConverter, cache, cors, db
    from procurement.procurement_api import blp as api_blueprint
    from procurement.schemas import MAX_ID

    if config is None:
        cfg = ConfigManager()
    elif isinstance(config, ConfigManager):
        cfg = config
    else:
        cfg = ConfigManager(environ={k: str(v) for k, v in config.items()}, env_file=None)
    fatal = [p for p in cfg.validate() if not p.startswith("PROCUREMENT_LOG_FILE")]
    if fatal:
        raise ConfigError("invalid configuration: " + "; ".join(fatal))

    app = Flask(__name__, static_folder=None)
    app.config.update(cfg.to_flask())
    app.config.update(
        API_TITLE="Procurement API",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    app.url_map.converters["id"] = IdConverter

    logs.init_app(app)
    db.init_app(app)
    cache.init_app(app)
    project_monitor.init_app(app)
    cors.init_app(
        app,
        resources={r"/api/*": {"origins": cfg.cors_origins}},
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID"],
    )
    api = Api(app)
    api.register_converter(
        IdConverter, lambda _c: {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    )
    api.register_blueprint(api_blueprint)
    app.register_blueprint(health_checker.bp)
    app.register_blueprint(web.bp)
    errors.register(app)
    return app
