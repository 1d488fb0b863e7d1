"""Care-team overview: an expression index on user_status in urgency order.

The key is (alert level rank, next_due with none last, user_id); see
db/urgency.py, whose SQL this copies: a migration must not change when the
code does.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_URGENCY = (
    "(CASE alert_level WHEN 'EMERGENCY' THEN 0 WHEN 'ALERT' THEN 1 "
    "WHEN 'WARNING' THEN 2 WHEN 'NONE' THEN 3 ELSE 4 END)"
)
_DUE_KEY = "COALESCE(next_due, '9999-12-31 00:00:00+00'::timestamp with time zone)"


def _postgresql() -> bool:
    # SQLite (single-node development) scans: SQLAlchemy cannot reflect its
    # expression indexes, and its tables stay small.
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgresql():
        op.create_index(
            "ix_user_status_urgency",
            "user_status",
            [sa.text(_URGENCY), sa.text(_DUE_KEY), "user_id"],
        )


def downgrade() -> None:
    if _postgresql():
        op.drop_index("ix_user_status_urgency", table_name="user_status")
