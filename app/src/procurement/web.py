"""Server-rendered dashboard: orders, pending requests, suppliers, figures.

Login takes an API token once and keeps only the user's name in a signed,
HttpOnly, SameSite=Lax session cookie. Static files get content-hashed names
so Nginx can cache them for a year; ``static collect`` writes those copies.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
from pathlib import Path
from typing import Dict, Optional

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)

from procurement.data_access import users as user_data
from procurement.models import ORDER_STATUSES
from procurement.services import orders as order_service
from procurement.services import reports as report_service
from procurement.services import requests as request_service
from procurement.services import suppliers as supplier_service
from procurement.services import users as user_service

STATIC_DIR = Path(__file__).parent / "static"
bp = Blueprint("web", __name__, template_folder="templates")


# -- fingerprinted static files -----------------------------------------------
@functools.lru_cache(maxsize=1)
def static_manifest() -> Dict[str, str]:
    """Map each static file name to its name with a content hash, e.g. app.1a2b3c4d.css."""
    manifest = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
            manifest[path.name] = f"{path.stem}.{digest}{path.suffix}"
    return manifest


def collect_static(dest: str) -> list:
    """Copy the fingerprinted files into dest (what Nginx serves as /static/)."""
    target = Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for original, hashed in static_manifest().items():
        shutil.copyfile(STATIC_DIR / original, target / hashed)
        written.append(str(target / hashed))
    return written


@bp.app_template_global()
def static_url(name: str) -> str:
    prefix = current_app.config["PROCUREMENT"].static_url
    return prefix + static_manifest()[name]


@bp.route("/static/<path:filename>")
def static(filename: str):
    """Serve static files when no Nginx is in front (development, tests)."""
    reverse = {hashed: original for original, hashed in static_manifest().items()}
    if filename in reverse:
        return send_from_directory(STATIC_DIR, reverse[filename], max_age=31536000)
    if filename in static_manifest():
        return send_from_directory(STATIC_DIR, filename, max_age=0)
    abort(404)


# -- session login ----------------------------------------------------------
def _session_user() -> Optional[dict]:
    name = session.get("user")
    if not name:
        return None
    user = user_data.user_by_name(name)
    if user is None or not user["active"]:
        session.clear()
        return None
    return user


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = _session_user()
        if user is None:
            return redirect(url_for("web.login", next=request.path))
        g.actor = user
        return view(*args, **kwargs)

    return wrapped


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        user = user_service.authenticate(request.form.get("token", "").strip())
        if user is None:
            flash("That token is not valid.")
            return render_template("login.html"), 401
        session.clear()
        session["user"] = user["name"]
        target = request.args.get("next", "")
        # Only local paths, so the form cannot be used as an open redirect.
        if not target.startswith("/") or target.startswith("//"):
            target = url_for("web.index")
        return redirect(target)
    return render_template("login.html")


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("web.login"))


# -- pages ------------------------------------------------------------------
@bp.route("/")
@login_required
def index():
    return redirect(url_for("web.figures"))


@bp.route("/dashboard/orders")
@login_required
def orders():
    status = request.args.get("status", "")
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    args = {"page": min(page, 10_000), "per_page": 50, "open": status == "open"}
    if status in ORDER_STATUSES:
        args["status"] = [status]
    result = order_service.list_orders(args)
    for order in result["items"]:
        order["value"] = sum(line["quantity"] * line["unit_price"] for line in order["lines"])
    return render_template(
        "orders.html", result=result, status=status, statuses=ORDER_STATUSES, page=args["page"]
    )


@bp.route("/dashboard/requests")
@login_required
def pending_requests():
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    result = request_service.list_requests(
        {"status": "submitted", "page": min(page, 10_000), "per_page": 50}
    )
    for req in result["items"]:
        req["estimated_value"] = sum(
            line["quantity"] * line["estimated_unit_price"] for line in req["lines"]
        )
    return render_template("requests.html", result=result, page=page)


@bp.route("/dashboard/suppliers")
@login_required
def suppliers():
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    result = supplier_service.list_suppliers({"page": min(page, 10_000), "per_page": 50})
    return render_template("suppliers.html", result=result, page=page)


@bp.route("/dashboard/figures")
@login_required
def figures():
    return render_template("figures.html", figures=report_service.business_figures())
