"""Care-team overview on SQLite: the urgency index of revision 0004, in SQLite's spelling.

Without it SQLite read every status and sorted them for each page. SQLite
stores timestamps as naive UTC text (db.models.UTCDateTime), so "no
next_due" is the text that sorts last; the expressions copy db/urgency.py's
SQLite spelling, as the query must name them exactly for the planner to use
the index. PostgreSQL has had its own since revision 0004.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_URGENCY = (
    "(CASE alert_level WHEN 'EMERGENCY' THEN 0 WHEN 'ALERT' THEN 1 "
    "WHEN 'WARNING' THEN 2 WHEN 'NONE' THEN 3 ELSE 4 END)"
)
_DUE_KEY = "COALESCE(next_due, '9999-12-31 00:00:00.000000')"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _sqlite():
        op.create_index(
            "ix_user_status_urgency",
            "user_status",
            [sa.text(_URGENCY), sa.text(_DUE_KEY), "user_id"],
        )


def downgrade() -> None:
    if _sqlite():
        op.drop_index("ix_user_status_urgency", table_name="user_status")
