"""Tables of the source of truth.

All datetimes are timezone-aware UTC on the way in and on the way out, on every
dialect (SQLite stores them naive; :class:`UTCDateTime` restores the zone).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Activity",
    "AlertLevel",
    "Base",
    "OutboxEntry",
    "OutboxKind",
    "UTCDateTime",
    "UserSequence",
    "UserStatus",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JSONObject = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    Raises:
        ValueError: when bound to a naive datetime (the zone would be a guess).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime; timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Stored as naive UTC text so that string order is time order.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _values(enum_class: type[enum.Enum]) -> list[str]:
    # Store enum values ("activity"), not member names ("ACTIVITY").
    return [str(member.value) for member in enum_class]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AlertLevel(enum.StrEnum):
    """How worried the dashboard should be about a user, in rising order."""

    NONE = "NONE"
    WARNING = "WARNING"
    ALERT = "ALERT"
    EMERGENCY = "EMERGENCY"


class OutboxKind(enum.StrEnum):
    """What an outbox entry carries: an added activity or a status snapshot."""

    ACTIVITY = "activity"
    STATUS = "status"


class Activity(Base):
    """One entry of a user's activity feed."""

    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255))
    # Position in the user's change stream; see UserSequence.
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONObject)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_activities_user_timestamp", "user_id", timestamp.desc(), id.desc()),
        Index("ix_activities_timestamp", timestamp.desc(), id.desc()),
        UniqueConstraint("user_id", "seq", name="uq_activities_user_seq"),
    )


#: Urgency order of statuses (db/urgency.py): alert level rank, 0 = EMERGENCY ...
URGENCY_SQL = (
    "(CASE alert_level WHEN 'EMERGENCY' THEN 0 WHEN 'ALERT' THEN 1 "
    "WHEN 'WARNING' THEN 2 WHEN 'NONE' THEN 3 ELSE 4 END)"
)
#: ... then next_due, none last (PostgreSQL spelling; SQLite's is in db/urgency.py).
DUE_KEY_SQL = "COALESCE(next_due, '9999-12-31 00:00:00+00'::timestamp with time zone)"


class UserStatus(Base):
    """The one current status row of a user."""

    __tablename__ = "user_status"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_check_in: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    alert_level: Mapped[AlertLevel] = mapped_column(
        Enum(AlertLevel, name="alert_level", native_enum=False, length=16, values_callable=_values),
        default=AlertLevel.NONE,
    )
    alert_triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # +1 on every write; starts at 1.
    version: Mapped[int] = mapped_column(BigInteger)
    # Position of this status's last change in the user's change stream.
    seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # Escalation deadlines: the earliest next_due of each alert level is one probe.
        Index("ix_user_status_alert_level_next_due", "alert_level", "next_due"),
        # The care-team overview, most urgent first. PostgreSQL's spelling; SQLite
        # has the same index in its own spelling (revision 0006, db/urgency.py).
        Index("ix_user_status_urgency", text(URGENCY_SQL), text(DUE_KEY_SQL), "user_id").ddl_if(
            dialect="postgresql"
        ),
    )


class UserSequence(Base):
    """The last sequence number handed out in a user's change stream.

    Every change of a user (activity or status) takes ``last_seq + 1`` under this
    row's lock, inside the writing transaction. Writers of one user therefore
    commit in sequence order, and the sequence has no gaps: a rolled-back
    transaction rolls its increment back too. Serial ids give neither guarantee.
    """

    __tablename__ = "user_sequences"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class OutboxEntry(Base):
    """A committed change waiting to be mirrored to the realtime store and published.

    Written in the same transaction as the change it describes. ``payload`` is the
    full snapshot of the changed entity (an activity or a status), so relaying an
    entry never needs to read the entity again.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[OutboxKind] = mapped_column(
        Enum(OutboxKind, name="outbox_kind", native_enum=False, length=16, values_callable=_values)
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONObject)
    # Transaction time of the change; the origin of freshness measurements.
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # W3C traceparent of the span the change was committed in (sync.trace_context).
    trace_parent: Mapped[str | None] = mapped_column(String(55))

    __table_args__ = (
        UniqueConstraint("user_id", "seq", name="uq_outbox_user_seq"),
        # Only pending entries are indexed: published ones are never scanned by the relay.
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )


class IdempotencyKey(Base):
    """A client's idempotency key and the first result of the write it named.

    Inserted in the write's own transaction, under the primary key, so two
    concurrent retries of one write make one write: the second waits for the
    first to commit and then finds its result.
    """

    __tablename__ = "idempotency_keys"

    # Who sent the key ("role:userId"): keys of different principals never collide.
    principal: Mapped[str] = mapped_column(String(300), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    # SHA-256 of the operation's input, to tell a retry from a reuse.
    request_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONObject)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)
