"""Purchase orders, their lines and goods receipts.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _created():
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "purchase_orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("purchase_requests.id"), nullable=False),
        sa.Column("supplier_id", sa.Integer, sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("buyer", sa.String(80), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="issued"),
        sa.Column("expected_delivery_date", sa.Date, nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        _created(),
        sa.Column("received_at", sa.DateTime(timezone=True)),
        sa.Column("delivered_on", sa.Date),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        # One approved request yields at most one order, even under races.
        sa.UniqueConstraint("request_id", name="uq_orders_request"),
        sa.CheckConstraint(
            "status IN ('issued', 'partially_received', 'received', 'closed', 'cancelled')",
            name="ck_orders_status",
        ),
    )
    op.create_index("idx_orders_status", "purchase_orders", ["status"])
    op.create_index("idx_orders_supplier", "purchase_orders", ["supplier_id"])
    op.create_index("idx_orders_created", "purchase_orders", ["created_at"])
    op.create_table(
        "purchase_order_lines",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "order_id",
            sa.Integer,
            sa.ForeignKey("purchase_orders.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("quantity", sa.Numeric(14, 3), nullable=False),
        sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
        sa.Column("received_quantity", sa.Numeric(14, 3), nullable=False, server_default="0"),
        sa.UniqueConstraint("order_id", "line_no", name="uq_order_lines_no"),
        sa.CheckConstraint("quantity > 0", name="ck_order_lines_quantity"),
        sa.CheckConstraint(
            "received_quantity >= 0 AND received_quantity <= quantity",
            name="ck_order_lines_received",
        ),
    )
    op.create_index("idx_order_lines_order", "purchase_order_lines", ["order_id"])
    op.create_table(
        "goods_receipts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("purchase_orders.id"), nullable=False),
        sa.Column("delivery_date", sa.Date, nullable=False),
        sa.Column("received_by", sa.String(80), nullable=False),
        _created(),
    )
    op.create_index("idx_receipts_order", "goods_receipts", ["order_id"])
    op.create_table(
        "goods_receipt_lines",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "receipt_id",
            sa.Integer,
            sa.ForeignKey("goods_receipts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "order_line_id",
            sa.Integer,
            sa.ForeignKey("purchase_order_lines.id"),
            nullable=False,
        ),
        sa.Column("quantity", sa.Numeric(14, 3), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_receipt_lines_quantity"),
    )


def downgrade() -> None:
    op.drop_table("goods_receipt_lines")
    op.drop_index("idx_receipts_order", table_name="goods_receipts")
    op.drop_table("goods_receipts")
    op.drop_index("idx_order_lines_order", table_name="purchase_order_lines")
    op.drop_table("purchase_order_lines")
    op.drop_index("idx_orders_created", table_name="purchase_orders")
    op.drop_index("idx_orders_supplier", table_name="purchase_orders")
    op.drop_index("idx_orders_status", table_name="purchase_orders")
    op.drop_table("purchase_orders")
