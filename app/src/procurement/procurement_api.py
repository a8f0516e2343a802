"""JSON API under /api/v1.

Views only translate HTTP to manager calls and back; schemas validate the
input and document it. Responses list the error statuses each operation can
produce, all in the shape described by ``errors.ErrorSchema``.
"""

from __future__ import annotations

import datetime as dt
import json

import marshmallow as ma
from flask import current_app, request
from flask_smorest import Blueprint

from procurement import schemas as s
from procurement.auth import current_actor, require_auth
from procurement.errors import ApiError, ErrorSchema
from procurement.services import common as rules
from procurement.services import items as item_service
from procurement.services import orders as order_service
from procurement.services import reports as report_service
from procurement.services import requests as request_service
from procurement.services import suppliers as supplier_service
from procurement.services import users as user_service

blp = Blueprint(
    "api", __name__, url_prefix="/api/v1", description="Procurement: requests, orders, suppliers"
)
blp.before_request(require_auth)


def rendered(schema_cls):
    """A renderer the manager may cache, so cache hits skip serialisation entirely."""
    schema = schema_cls()

    def render(data) -> bytes:
        return json.dumps(schema.dump(data), separators=(",", ":")).encode()

    return render


def json_response(body: bytes):
    return current_app.response_class(body, mimetype="application/json")


SUPPLIER = rendered(s.SupplierSchema)
SUPPLIER_PAGE = rendered(s.SupplierPage)
PERFORMANCE = rendered(s.SupplierPerformanceSchema)
REQUEST_PAGE = rendered(s.RequestPage)
ORDER_PAGE = rendered(s.OrderPage)
FIGURES = rendered(s.FiguresSchema)


def errors_doc(*statuses: int):
    """Document error responses; 401 applies everywhere since every call needs a token."""

    def decorate(func):
        for status in sorted({401, *statuses}, reverse=True):
            func = blp.alt_response(status, schema=ErrorSchema, description="Error")(func)
        return func

    return decorate


# -- identity and users ---------------------------------------------------
@blp.route("/me")
@blp.response(200, s.UserSchema)
@errors_doc()
def me():
    """The authenticated user."""
    return current_actor()


@blp.route("/users")
@blp.response(200, s.UserListSchema)
@errors_doc(403)
def list_users():
    """Users (admin only)."""
    rules.require_role(current_actor(), "admin")
    return {"items": user_service.list_users()}


@blp.route("/users", methods=["POST"])
@blp.arguments(s.UserCreateSchema())
@blp.response(201, s.UserCreatedSchema)
@errors_doc(403, 409)
def create_user(data):
    """Create a user and its API token; the token is shown only in this response."""
    actor = current_actor()
    rules.require_role(actor, "admin")
    user, token = user_service.create_user(actor["name"], data["name"], data["role"])
    return {"user": user, "token": token}


@blp.route("/users/<id:user_id>", methods=["PATCH"])
@blp.arguments(s.UserUpdateSchema())
@blp.response(200, s.UserSchema)
@errors_doc(403, 404, 409)
def update_user(data, user_id):
    """Deactivate or reactivate a user (admin only); a deactivated user's token stops working."""
    return user_service.set_active(current_actor(), user_id, data["active"])


@blp.route("/users/<id:user_id>/token", methods=["POST"])
@blp.response(201, s.UserCreatedSchema)
@errors_doc(403, 404)
def new_user_token(user_id):
    """Give a user a new token (admin only), shown only here; the old one stops working."""
    user, token = user_service.new_user_token(current_actor(), user_id)
    return {"user": user, "token": token}


@blp.route("/users/<id:user_id>/token", methods=["DELETE"])
@blp.response(200, s.UserSchema)
@errors_doc(403, 404)
def revoke_user_token(user_id):
    """Revoke a user's token without a new one (admin only); it is refused at once."""
    return user_service.revoke_user_token(current_actor(), user_id)


# -- suppliers ------------------------------------------------------------
@blp.route("/suppliers")
@blp.arguments(s.SupplierQuerySchema(), location="query", unknown=ma.RAISE)
@blp.response(200, s.SupplierPage)
@errors_doc()
def list_suppliers(args):
    return json_response(supplier_service.list_suppliers(args, SUPPLIER_PAGE))


@blp.route("/suppliers", methods=["POST"])
@blp.arguments(s.SupplierCreateSchema())
@blp.response(201, s.SupplierSchema)
@errors_doc(403)
def create_supplier(data):
    return supplier_service.create_supplier(current_actor(), data)


@blp.route("/suppliers/<id:supplier_id>")
@blp.response(200, s.SupplierSchema)
@errors_doc(404)
def get_supplier(supplier_id):
    return json_response(supplier_service.get_supplier(supplier_id, SUPPLIER))


@blp.route("/suppliers/<id:supplier_id>", methods=["PATCH"])
@blp.arguments(s.SupplierUpdateSchema())
@blp.response(200, s.SupplierSchema)
@errors_doc(403, 404)
def update_supplier(data, supplier_id):
    """Change some fields; the body may be {} but must be present."""
    if not request.get_data():
        raise ApiError(422, "validation_error", "a JSON body is required", {"json": ["missing"]})
    return supplier_service.update_supplier(current_actor(), supplier_id, data)


@blp.route("/suppliers/<id:supplier_id>/performance")
@blp.response(200, s.SupplierPerformanceSchema)
@errors_doc(404)
def supplier_performance(supplier_id):
    """On-time delivery rate and lead time, refreshed at each completed receipt."""
    return json_response(supplier_service.supplier_performance(supplier_id, PERFORMANCE))


# -- items and stock ------------------------------------------------------
@blp.route("/items")
@blp.arguments(s.PageArgs(), location="query", unknown=ma.RAISE)
@blp.response(200, s.ItemPage)
@errors_doc()
def list_items(args):
    return item_service.list_items(args)


@blp.route("/items", methods=["POST"])
@blp.arguments(s.ItemCreateSchema())
@blp.response(201, s.ItemSchema)
@errors_doc(403, 409)
def create_item(data):
    return item_service.create_item(current_actor(), data)


@blp.route("/items/<id:item_id>")
@blp.response(200, s.ItemSchema)
@errors_doc(404)
def get_item(item_id):
    return item_service.get_item(item_id)


@blp.route("/items/<id:item_id>/issues", methods=["POST"])
@blp.arguments(s.StockIssueSchema())
@blp.response(201, s.ItemSchema)
@errors_doc(403, 404, 409)
def issue_stock(data, item_id):
    """Take goods out of stock (counts as cost of goods issued)."""
    return item_service.issue_stock(current_actor(), item_id, data["quantity"], data["note"])


# -- purchase requests ----------------------------------------------------
@blp.route("/requests")
@blp.arguments(s.RequestQuerySchema(), location="query", unknown=ma.RAISE)
@blp.response(200, s.RequestPage)
@errors_doc()
def list_requests(args):
    return json_response(request_service.list_requests(args, REQUEST_PAGE))


@blp.route("/requests", methods=["POST"])
@blp.arguments(s.RequestCreateSchema())
@blp.response(201, s.RequestSchema)
@errors_doc(404)
def create_request(data):
    return request_service.create_request(current_actor(), data)


@blp.route("/requests/<id:request_id>")
@blp.response(200, s.RequestSchema)
@errors_doc(404)
def get_request(request_id):
    return request_service.get_request(request_id)


@blp.route("/requests/<id:request_id>/submit", methods=["POST"])
@blp.response(200, s.RequestSchema)
@errors_doc(403, 404, 409)
def submit_request(request_id):
    return request_service.submit_request(current_actor(), request_id)


@blp.route("/requests/<id:request_id>/cancel", methods=["POST"])
@blp.response(200, s.RequestSchema)
@errors_doc(403, 404, 409)
def cancel_request(request_id):
    return request_service.cancel_request(current_actor(), request_id)


@blp.route("/requests/<id:request_id>/approve", methods=["POST"])
@blp.arguments(s.DecisionSchema(), required=False)
@blp.response(200, s.RequestSchema)
@errors_doc(403, 404, 409)
def approve_request(data, request_id):
    """Approve a submitted request; of two concurrent decisions one wins, the other gets 409."""
    return request_service.decide_request(
        current_actor(), request_id, True, (data or {}).get("comment", "")
    )


@blp.route("/requests/<id:request_id>/reject", methods=["POST"])
@blp.arguments(s.DecisionSchema(), required=False)
@blp.response(200, s.RequestSchema)
@errors_doc(403, 404, 409)
def reject_request(data, request_id):
    return request_service.decide_request(
        current_actor(), request_id, False, (data or {}).get("comment", "")
    )


# -- purchase orders ------------------------------------------------------
@blp.route("/orders")
@blp.arguments(s.OrderQuerySchema(), location="query", unknown=ma.RAISE)
@blp.response(200, s.OrderPage)
@errors_doc()
def list_orders(args):
    return json_response(order_service.list_orders(args, ORDER_PAGE))


@blp.route("/orders", methods=["POST"])
@blp.arguments(s.OrderCreateSchema())
@blp.response(201, s.OrderSchema)
@errors_doc(403, 404, 409)
def create_order(data):
    """Issue an order from one approved request; a request never yields two orders."""
    return order_service.create_order(current_actor(), data)


@blp.route("/orders/<id:order_id>")
@blp.response(200, s.OrderSchema)
@errors_doc(404)
def get_order(order_id):
    return order_service.get_order(order_id)


@blp.route("/orders/<id:order_id>/receipts", methods=["POST"])
@blp.arguments(s.ReceiptCreateSchema())
@blp.response(201, s.OrderSchema)
@errors_doc(403, 404, 409)
def receive_goods(data, order_id):
    """Record a delivery (partial or complete)."""
    return order_service.receive_goods(current_actor(), order_id, data)


@blp.route("/orders/<id:order_id>/close", methods=["POST"])
@blp.response(200, s.OrderSchema)
@errors_doc(403, 404, 409)
def close_order(order_id):
    return order_service.close_order(current_actor(), order_id)


@blp.route("/orders/<id:order_id>/cancel", methods=["POST"])
@blp.response(200, s.OrderSchema)
@errors_doc(403, 404, 409)
def cancel_order(order_id):
    return order_service.cancel_order(current_actor(), order_id)


# -- reports and audit ----------------------------------------------------
@blp.route("/reports/figures")
@blp.response(200, s.FiguresSchema)
@errors_doc()
def figures():
    """Orders by status, processing time, supplier performance, inventory turnover."""
    return json_response(report_service.business_figures(FIGURES))


@blp.route("/reports/inventory-turnover")
@blp.arguments(s.TurnoverQuerySchema(), location="query", unknown=ma.RAISE)
@blp.response(200, s.TurnoverSchema)
@errors_doc()
def inventory_turnover(args):
    """Turnover over the period_days days ending with `end` (inclusive)."""
    end_day = min(args.get("end") or dt.date.today(), dt.date.max - dt.timedelta(days=1))
    end = dt.datetime.combine(end_day + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    start = end - dt.timedelta(days=args["period_days"])
    return item_service.inventory_turnover(start, end)


@blp.route("/audit")
@blp.arguments(s.AuditQuerySchema(), location="query", unknown=ma.RAISE)
@blp.response(200, s.AuditPage)
@errors_doc(403)
def audit(args):
    """Who changed what, and when (admin only)."""
    rules.require_role(current_actor(), "admin")
    return report_service.list_audit(args)
