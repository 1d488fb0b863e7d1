"""Escalation deadlines: an index on user_status (alert_level, next_due).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_user_status_alert_level_next_due", "user_status", ["alert_level", "next_due"]
    )


def downgrade() -> None:
    op.drop_index("ix_user_status_alert_level_next_due", table_name="user_status")
