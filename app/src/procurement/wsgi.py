"""WSGI entry point: ``gunicorn -c python:procurement.gunicorn_conf procurement.wsgi:app``."""

from __future__ import annotations

from procurement import create_app

app = create_app()
