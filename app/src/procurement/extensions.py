"""Extension objects, created once and bound to each app with ``init_app``."""

from __future__ import annotations

import flask_smorest
from flask_cors import CORS
from werkzeug.routing import IntegerConverter

from procurement import errors
from procurement.cache import cache
from procurement.data_access.core import db
from procurement.schemas import MAX_ID


class IdConverter(IntegerConverter):
    """Path ids within PostgreSQL's integer range; anything else is simply not found."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_ID)


class Api(flask_smorest.Api):
    """flask-smorest, but with the service's single error shape."""

    ERROR_SCHEMA = errors.ErrorSchema

    def handle_http_exception(self, error):
        return errors.handle_http_exception(error)


# No module-level Api: flask-smorest keeps one app and one spec per Api
# object, so create_app builds one per application.
cors = CORS()

__all__ = ["Api", "IdConverter", "cache", "cors", "db"]
