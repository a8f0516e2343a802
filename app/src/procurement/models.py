"""Table definitions.

The Alembic migrations are the authority on the schema; these classes mirror
them for the ORM, and a test compares the two so they cannot drift.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import List, Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("requester", "approver", "buyer", "admin")
SUPPLIER_STATUSES = ("active", "inactive", "blocked")
REQUEST_STATUSES = ("draft", "submitted", "approved", "rejected", "cancelled")
ORDER_STATUSES = ("issued", "partially_received", "received", "closed", "cancelled")
OPEN_ORDER_STATUSES = ("issued", "partially_received")
MOVEMENT_KINDS = ("receipt", "issue")


def _now_column() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True, nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    created_at: Mapped[dt.datetime] = _now_column()


class Supplier(Base):
    __tablename__ = "suppliers"
    __table_args__ = (
        Index("idx_suppliers_category", "category"),
        Index("idx_suppliers_performance", "on_time_delivery_rate"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    category: Mapped[str] = mapped_column(String(100), nullable=False)
    contact: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="active")
    on_time_delivery_rate: Mapped[Optional[Decimal]] = mapped_column(Numeric(5, 4))
    avg_lead_time_days: Mapped[Optional[Decimal]] = mapped_column(Numeric(8, 2))
    completed_orders: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[dt.datetime] = _now_column()
    updated_at: Mapped[dt.datetime] = _now_column()


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    unit: Mapped[str] = mapped_column(String(20), nullable=False, server_default="each")
    unit_cost: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)
    quantity_on_hand: Mapped[Decimal] = mapped_column(
        Numeric(14, 3), nullable=False, server_default="0"
    )
    created_at: Mapped[dt.datetime] = _now_column()


class StockMovement(Base):
    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_stock_movements_quantity"),
        Index("idx_movements_item_time", "item_id", "occurred_at"),
        Index("idx_movements_time", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3), nullable=False)
    unit_cost: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)
    order_id: Mapped[Optional[int]] = mapped_column(ForeignKey("purchase_orders.id"))
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    occurred_at: Mapped[dt.datetime] = _now_column()


class PurchaseRequest(Base):
    __tablename__ = "purchase_requests"
    __table_args__ = (
        Index("idx_requests_requester", "requester"),
        Index("idx_requests_status", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requester: Mapped[str] = mapped_column(String(80), ForeignKey("users.name"), nullable=False)
    justification: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="draft")
    created_at: Mapped[dt.datetime] = _now_column()
    submitted_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[Optional[str]] = mapped_column(String(80))
    decision_comment: Mapped[Optional[str]] = mapped_column(Text)
    lines: Mapped[List[PurchaseRequestLine]] = relationship(
        order_by="PurchaseRequestLine.line_no", cascade="all, delete-orphan"
    )


class PurchaseRequestLine(Base):
    __tablename__ = "purchase_request_lines"
    __table_args__ = (
        UniqueConstraint("request_id", "line_no", name="uq_request_lines_no"),
        CheckConstraint("quantity > 0", name="ck_request_lines_quantity"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("purchase_requests.id", ondelete="CASCADE"), nullable=False
    )
    line_no: Mapped[int] = mapped_column(Integer, nullable=False)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3), nullable=False)
    estimated_unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)


class PurchaseOrder(Base):
    __tablename__ = "purchase_orders"
    __table_args__ = (
        UniqueConstraint("request_id", name="uq_orders_request"),
        Index("idx_orders_status", "status"),
        Index("idx_orders_supplier", "supplier_id"),
        Index("idx_orders_created", "created_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("purchase_requests.id"), nullable=False)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), nullable=False)
    buyer: Mapped[str] = mapped_column(String(80), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="issued")
    expected_delivery_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    approved_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[dt.datetime] = _now_column()
    received_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True))
    delivered_on: Mapped[Optional[dt.date]] = mapped_column(Date)
    closed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True))
    lines: Mapped[List[PurchaseOrderLine]] = relationship(
        order_by="PurchaseOrderLine.line_no", cascade="all, delete-orphan"
    )


class PurchaseOrderLine(Base):
    __tablename__ = "purchase_order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_no", name="uq_order_lines_no"),
        CheckConstraint("quantity > 0", name="ck_order_lines_quantity"),
        CheckConstraint(
            "received_quantity >= 0 AND received_quantity <= quantity",
            name="ck_order_lines_received",
        ),
        Index("idx_order_lines_order", "order_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("purchase_orders.id", ondelete="CASCADE"), nullable=False
    )
    line_no: Mapped[int] = mapped_column(Integer, nullable=False)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3), nullable=False)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)
    received_quantity: Mapped[Decimal] = mapped_column(
        Numeric(14, 3), nullable=False, server_default="0"
    )


class GoodsReceipt(Base):
    __tablename__ = "goods_receipts"
    __table_args__ = (Index("idx_receipts_order", "order_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("purchase_orders.id"), nullable=False)
    delivery_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    received_by: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[dt.datetime] = _now_column()
    lines: Mapped[List[GoodsReceiptLine]] = relationship(cascade="all, delete-orphan")


class GoodsReceiptLine(Base):
    __tablename__ = "goods_receipt_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="ck_receipt_lines_quantity"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    receipt_id: Mapped[int] = mapped_column(
        ForeignKey("goods_receipts.id", ondelete="CASCADE"), nullable=False
    )
    order_line_id: Mapped[int] = mapped_column(
        ForeignKey("purchase_order_lines.id"), nullable=False
    )
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3), nullable=False)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("idx_audit_entity", "entity", "entity_id"),
        Index("idx_audit_time", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    occurred_at: Mapped[dt.datetime] = _now_column()
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    entity: Mapped[str] = mapped_column(String(40), nullable=False)
    entity_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    details: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
