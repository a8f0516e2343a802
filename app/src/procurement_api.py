"""Top-level entry point matching the manual's ``ExecStart=... python3 procurement_api.py``.

Production serves through gunicorn; this runs the same gunicorn
configuration in-process so the manual's unit file behaves the same.
"""

from __future__ import annotations

import sys


def main() -> None:
    from gunicorn.app.wsgiapp import run

    sys.argv = [
        "gunicorn",
        "-c",
        "python:procurement.gunicorn_conf",
        "procurement.wsgi:app",
        *sys.argv[1:],
    ]
    run()


if __name__ == "__main__":
    main()
