"""Initial schema: activities, user_status, user_sequences, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONObject = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC = sa.DateTime(timezone=True)
PENDING = sa.text("published_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "activities",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("timestamp", UTC, nullable=False),
        sa.Column("metadata", JSONObject, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
        sa.UniqueConstraint("user_id", "seq", name="uq_activities_user_seq"),
    )
    op.create_index(
        "ix_activities_user_timestamp",
        "activities",
        ["user_id", sa.text("timestamp DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_activities_timestamp", "activities", [sa.text("timestamp DESC"), sa.text("id DESC")]
    )
    op.create_table(
        "user_status",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("last_check_in", UTC, nullable=True),
        sa.Column("next_due", UTC, nullable=True),
        sa.Column(
            "alert_level",
            sa.Enum(
                "NONE",
                "WARNING",
                "ALERT",
                "EMERGENCY",
                name="alert_level",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("alert_triggered_at", UTC, nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_status")),
    )
    op.create_table(
        "user_sequences",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_sequences")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("activity", "status", name="outbox_kind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("payload", JSONObject, nullable=False),
        sa.Column("committed_at", UTC, nullable=False),
        sa.Column("published_at", UTC, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("user_id", "seq", name="uq_outbox_user_seq"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["next_attempt_at", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("user_sequences")
    op.drop_table("user_status")
    op.drop_index("ix_activities_timestamp", table_name="activities")
    op.drop_index("ix_activities_user_timestamp", table_name="activities")
    op.drop_table("activities")
