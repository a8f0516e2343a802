"""Users with hashed API tokens, and suppliers.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created():
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default="true"),
        _created(),
        sa.CheckConstraint(
            "role IN ('requester', 'approver', 'buyer', 'admin')", name="ck_users_role"
        ),
    )
    op.create_table(
        "suppliers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False, server_default=""),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column("on_time_delivery_rate", sa.Numeric(5, 4)),
        sa.Column("avg_lead_time_days", sa.Numeric(8, 2)),
        sa.Column("completed_orders", sa.Integer, nullable=False, server_default="0"),
        _created(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "status IN ('active', 'inactive', 'blocked')", name="ck_suppliers_status"
        ),
    )
    op.create_index("idx_suppliers_category", "suppliers", ["category"])
    op.create_index("idx_suppliers_performance", "suppliers", ["on_time_delivery_rate"])


def downgrade() -> None:
    op.drop_index("idx_suppliers_performance", table_name="suppliers")
    op.drop_index("idx_suppliers_category", table_name="suppliers")
    op.drop_table("suppliers")
    op.drop_table("users")
