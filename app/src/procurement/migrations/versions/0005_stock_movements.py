"""Stock movements, the basis of inventory turnover.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stock_movements",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("quantity", sa.Numeric(14, 3), nullable=False),
        sa.Column("unit_cost", sa.Numeric(12, 2), nullable=False),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("purchase_orders.id")),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column(
            "occurred_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("quantity > 0", name="ck_stock_movements_quantity"),
        sa.CheckConstraint("kind IN ('receipt', 'issue')", name="ck_stock_movements_kind"),
    )
    op.create_index("idx_movements_item_time", "stock_movements", ["item_id", "occurred_at"])
    op.create_index("idx_movements_time", "stock_movements", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("idx_movements_time", table_name="stock_movements")
    op.drop_index("idx_movements_item_time", table_name="stock_movements")
    op.drop_table("stock_movements")
