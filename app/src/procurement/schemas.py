"""Marshmallow schemas: they validate requests and generate the OpenAPI document.

Every constraint the service enforces on input is expressed here, so that
the published document is honest: a request that the document calls valid
is never refused as malformed (422), only as unauthorised, unknown (404) or
conflicting with current state (409).
"""

from __future__ import annotations

import decimal

import marshmallow as ma
from marshmallow import fields, validate

from procurement.models import ORDER_STATUSES, REQUEST_STATUSES, ROLES, SUPPLIER_STATUSES

MAX_PER_PAGE = 100
MAX_ID = 2**31 - 1
NO_NUL = "^[^\\u0000]*$"


class Text(fields.String):
    """A string PostgreSQL can store: no NUL characters, valid UTF-8."""

    def __init__(self, *args, min_length: int = 0, max_length: int = 200, **kwargs):
        metadata = kwargs.pop("metadata", {})
        metadata.setdefault("pattern", NO_NUL)
        super().__init__(
            *args,
            validate=validate.Length(min=min_length, max=max_length),
            metadata=metadata,
            **kwargs,
        )

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in result:
            raise ma.ValidationError("must not contain NUL characters")
        try:
            result.encode("utf-8")
        except UnicodeEncodeError:
            raise ma.ValidationError("must be valid UTF-8") from None
        return result


class Amount(fields.Decimal):
    """A decimal read exactly, rounded to the column's scale, written as a JSON number."""

    def __init__(self, places: int, minimum: str, rounding=decimal.ROUND_HALF_UP, **kwargs):
        self.minimum = decimal.Decimal(minimum)
        super().__init__(
            places=places,
            rounding=rounding,
            allow_nan=False,
            validate=validate.Range(min=self.minimum, max=decimal.Decimal(100_000_000)),
            **kwargs,
        )

    def _deserialize(self, value, attr, data, **kwargs):
        _reject_non_number(value)
        # The bound holds for the number sent, not only after rounding:
        # -1e-9 would otherwise round to a valid -0.00.
        if isinstance(value, (int, float)) and value < self.minimum:
            raise ma.ValidationError(f"Must be greater than or equal to {self.minimum}.")
        return super()._deserialize(value, attr, data, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        result = super()._serialize(value, attr, obj, **kwargs)
        return None if result is None else float(result)


def _reject_non_number(value) -> None:
    # JSON bodies carry numbers as numbers; "5" or true is a client bug, not a number.
    if isinstance(value, (str, bool)):
        raise ma.ValidationError("Not a valid number.")


class JsonInteger(fields.Integer):
    """An integer in a JSON body: strings and booleans are refused, not coerced."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        _reject_non_number(value)
        return super()._deserialize(value, attr, data, **kwargs)


class JsonBoolean(fields.Boolean):
    """A boolean in a JSON body: only true and false."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ma.ValidationError("Not a valid boolean.")
        return value


def Id(**kwargs) -> fields.Integer:
    """An id in a JSON body."""
    return JsonInteger(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def QueryId(**kwargs) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def Quantity(**kwargs) -> Amount:
    # Rounded up: 0.0015 is 0.002, and a quantity never rounds down to zero
    # (anything under 0.001 is refused, as the schema says).
    return Amount(3, "0.001", rounding=decimal.ROUND_UP, **kwargs)


def Price(**kwargs) -> Amount:
    return Amount(2, "0", **kwargs)


# -- common ---------------------------------------------------------------
class PageArgs(ma.Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class PageMeta(ma.Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    has_next = fields.Boolean(required=True)


def page_of(item_schema: type, name: str) -> type:
    return ma.Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "meta": fields.Nested(PageMeta, required=True),
        },
        name=name,
    )


# -- users ----------------------------------------------------------------
class UserSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    active = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class UserCreateSchema(ma.Schema):
    name = Text(required=True, min_length=1, max_length=80)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class UserUpdateSchema(ma.Schema):
    active = JsonBoolean(required=True, metadata={"description": "false deactivates the user"})


class UserCreatedSchema(ma.Schema):
    user = fields.Nested(UserSchema, required=True)
    token = fields.String(
        required=True, metadata={"description": "Shown once; only its hash is stored"}
    )


class UserListSchema(ma.Schema):
    items = fields.List(fields.Nested(UserSchema), required=True)


# -- suppliers ------------------------------------------------------------
class SupplierSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    category = fields.String(required=True)
    contact = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(SUPPLIER_STATUSES))
    on_time_delivery_rate = fields.Float(required=True, allow_none=True)
    avg_lead_time_days = fields.Float(required=True, allow_none=True)
    completed_orders = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class SupplierCreateSchema(ma.Schema):
    name = Text(required=True, min_length=1, max_length=200)
    category = Text(required=True, min_length=1, max_length=100)
    contact = Text(load_default="", max_length=200)
    status = fields.String(load_default="active", validate=validate.OneOf(SUPPLIER_STATUSES))


class SupplierUpdateSchema(ma.Schema):
    name = Text(min_length=1, max_length=200)
    category = Text(min_length=1, max_length=100)
    contact = Text(max_length=200)
    status = fields.String(validate=validate.OneOf(SUPPLIER_STATUSES))


class SupplierQuerySchema(PageArgs):
    category = Text(max_length=100)
    status = fields.String(validate=validate.OneOf(SUPPLIER_STATUSES))
    min_on_time_rate = fields.Float(validate=validate.Range(min=0.0, max=1.0), allow_nan=False)


class SupplierPerformanceSchema(ma.Schema):
    supplier_id = fields.Integer(required=True)
    name = fields.String(required=True)
    on_time_delivery_rate = fields.Float(required=True, allow_none=True)
    avg_lead_time_days = fields.Float(required=True, allow_none=True)
    completed_orders = fields.Integer(required=True)
    orders_by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


# -- items ----------------------------------------------------------------
class ItemSchema(ma.Schema):
    id = fields.Integer(required=True)
    sku = fields.String(required=True)
    name = fields.String(required=True)
    unit = fields.String(required=True)
    unit_cost = Price(required=True)
    quantity_on_hand = Amount(3, "0", required=True)
    created_at = fields.DateTime(required=True)


class ItemCreateSchema(ma.Schema):
    sku = Text(required=True, min_length=1, max_length=64)
    name = Text(required=True, min_length=1, max_length=200)
    unit = Text(load_default="each", min_length=1, max_length=20)
    unit_cost = Price(required=True)


class StockIssueSchema(ma.Schema):
    quantity = Quantity(required=True)
    note = Text(load_default="", max_length=500)


class TurnoverQuerySchema(ma.Schema):
    period_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=366))
    end = fields.Date(metadata={"description": "Last day of the period; defaults to today"})


class TurnoverSchema(ma.Schema):
    start = fields.DateTime(required=True)
    end = fields.DateTime(required=True)
    cost_of_goods_issued = Price(required=True)
    opening_inventory_value = Price(required=True)
    closing_inventory_value = Price(required=True)
    average_inventory_value = Price(required=True)
    turnover = fields.Float(required=True, allow_none=True)


# -- purchase requests ----------------------------------------------------
class RequestLineInSchema(ma.Schema):
    item_id = Id(required=True)
    quantity = Quantity(required=True)
    estimated_unit_price = Price(required=True)


class RequestCreateSchema(ma.Schema):
    justification = Text(required=True, min_length=1, max_length=2000)
    lines = fields.List(
        fields.Nested(RequestLineInSchema), required=True, validate=validate.Length(min=1, max=100)
    )
    submit = JsonBoolean(load_default=False, metadata={"description": "Submit right away"})


class RequestLineSchema(ma.Schema):
    line_no = fields.Integer(required=True)
    item_id = fields.Integer(required=True)
    quantity = Quantity(required=True)
    estimated_unit_price = Price(required=True)


class RequestSchema(ma.Schema):
    id = fields.Integer(required=True)
    requester = fields.String(required=True)
    justification = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(REQUEST_STATUSES))
    created_at = fields.DateTime(required=True)
    submitted_at = fields.DateTime(required=True, allow_none=True)
    decided_at = fields.DateTime(required=True, allow_none=True)
    decided_by = fields.String(required=True, allow_none=True)
    decision_comment = fields.String(required=True, allow_none=True)
    lines = fields.List(fields.Nested(RequestLineSchema), required=True)


class RequestQuerySchema(PageArgs):
    status = fields.String(validate=validate.OneOf(REQUEST_STATUSES))
    requester = Text(max_length=80)
    created_from = fields.Date()
    created_to = fields.Date(metadata={"description": "Exclusive"})


class DecisionSchema(ma.Schema):
    comment = Text(load_default="", max_length=2000)


# -- purchase orders ------------------------------------------------------
class OrderCreateSchema(ma.Schema):
    request_id = Id(required=True)
    supplier_id = Id(required=True)
    expected_delivery_date = fields.Date(required=True)


class OrderLineSchema(ma.Schema):
    id = fields.Integer(required=True)
    line_no = fields.Integer(required=True)
    item_id = fields.Integer(required=True)
    quantity = Quantity(required=True)
    unit_price = Price(required=True)
    received_quantity = Amount(3, "0", required=True)


class OrderSchema(ma.Schema):
    id = fields.Integer(required=True)
    request_id = fields.Integer(required=True)
    supplier_id = fields.Integer(required=True)
    buyer = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(ORDER_STATUSES))
    expected_delivery_date = fields.Date(required=True)
    approved_at = fields.DateTime(required=True)
    created_at = fields.DateTime(required=True)
    received_at = fields.DateTime(required=True, allow_none=True)
    delivered_on = fields.Date(required=True, allow_none=True)
    closed_at = fields.DateTime(required=True, allow_none=True)
    cancelled_at = fields.DateTime(required=True, allow_none=True)
    lines = fields.List(fields.Nested(OrderLineSchema), required=True)


class OrderQuerySchema(PageArgs):
    status = fields.List(
        fields.String(validate=validate.OneOf(ORDER_STATUSES)),
        validate=validate.Length(max=len(ORDER_STATUSES)),
    )
    open = fields.Boolean(
        load_default=False, metadata={"description": "Only issued or partially received"}
    )
    supplier_id = QueryId()
    created_from = fields.Date()
    created_to = fields.Date(metadata={"description": "Exclusive"})


class ReceiptLineSchema(ma.Schema):
    line_no = JsonInteger(required=True, validate=validate.Range(min=1, max=1000))
    quantity = Quantity(required=True)


class ReceiptCreateSchema(ma.Schema):
    delivery_date = fields.Date(required=True)
    lines = fields.List(
        fields.Nested(ReceiptLineSchema), required=True, validate=validate.Length(min=1, max=100)
    )


# -- reports and audit ----------------------------------------------------
class ProcessingSchema(ma.Schema):
    orders = fields.Integer(required=True)
    avg_seconds = fields.Float(required=True, allow_none=True)
    max_seconds = fields.Float(required=True, allow_none=True)


class OverallPerformanceSchema(ma.Schema):
    rated_suppliers = fields.Integer(required=True)
    on_time_delivery_rate = fields.Float(required=True, allow_none=True)
    avg_lead_time_days = fields.Float(required=True, allow_none=True)
    suppliers_below_90_percent = fields.Integer(required=True)


class FiguresTurnoverSchema(ma.Schema):
    start = fields.DateTime(required=True)
    end = fields.DateTime(required=True)
    cost_of_goods_issued = Price(required=True)
    average_inventory_value = Price(required=True)
    turnover = fields.Float(required=True, allow_none=True)


class FiguresSchema(ma.Schema):
    orders_by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    order_processing = fields.Nested(ProcessingSchema, required=True)
    supplier_performance = fields.Nested(OverallPerformanceSchema, required=True)
    inventory_turnover = fields.Nested(FiguresTurnoverSchema, required=True)


class AuditQuerySchema(PageArgs):
    entity = fields.String(
        validate=validate.OneOf(("user", "supplier", "item", "purchase_request", "purchase_order"))
    )
    entity_id = QueryId()


class AuditEntrySchema(ma.Schema):
    id = fields.Integer(required=True)
    occurred_at = fields.DateTime(required=True)
    actor = fields.String(required=True)
    action = fields.String(required=True)
    entity = fields.String(required=True)
    entity_id = fields.Integer(required=True)
    details = fields.Dict(required=True)


SupplierPage = page_of(SupplierSchema, "SupplierPage")
ItemPage = page_of(ItemSchema, "ItemPage")
RequestPage = page_of(RequestSchema, "RequestPage")
OrderPage = page_of(OrderSchema, "OrderPage")
AuditPage = page_of(AuditEntrySchema, "AuditPage")
