"""Purchase requests and their lines.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purchase_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("requester", sa.String(80), sa.ForeignKey("users.name"), nullable=False),
        sa.Column("justification", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="draft"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("submitted_at", sa.DateTime(timezone=True)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decided_by", sa.String(80)),
        sa.Column("decision_comment", sa.Text),
        sa.CheckConstraint(
            "status IN ('draft', 'submitted', 'approved', 'rejected', 'cancelled')",
            name="ck_requests_status",
        ),
    )
    op.create_index("idx_requests_requester", "purchase_requests", ["requester"])
    op.create_index("idx_requests_status", "purchase_requests", ["status"])
    op.create_table(
        "purchase_request_lines",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "request_id",
            sa.Integer,
            sa.ForeignKey("purchase_requests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("quantity", sa.Numeric(14, 3), nullable=False),
        sa.Column("estimated_unit_price", sa.Numeric(12, 2), nullable=False),
        sa.UniqueConstraint("request_id", "line_no", name="uq_request_lines_no"),
        sa.CheckConstraint("quantity > 0", name="ck_request_lines_quantity"),
    )


def downgrade() -> None:
    op.drop_table("purchase_request_lines")
    op.drop_index("idx_requests_status", table_name="purchase_requests")
    op.drop_index("idx_requests_requester", table_name="purchase_requests")
    op.drop_table("purchase_requests")
