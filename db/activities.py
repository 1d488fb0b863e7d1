"""Activity feed: writes and keyset-paginated reads.

Feeds are ordered newest first by ``(timestamp, id)``. Pages are cut with a
keyset (:class:`ActivityKey`), not an offset, so a page boundary stays put while
new activities arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from . import outbox
from .models import Activity, utcnow
from .payloads import ActivityPayload
from .validation import (
    InvalidInput,
    check_description,
    check_metadata,
    check_not_future,
    check_type,
    check_user_id,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_TYPES",
    "ActivityKey",
    "ActivityPage",
    "add",
    "check_page",
    "feed",
    "recent",
    "recent_payloads",
]

MAX_PAGE_SIZE = 100
MAX_TYPES = 32


class ActivityKey(NamedTuple):
    """Position of an activity in a feed: newest first by timestamp, then id."""

    timestamp: datetime
    id: int

    @classmethod
    def of(cls, activity: Activity) -> ActivityKey:
        return cls(activity.timestamp, activity.id)


@dataclass(frozen=True, slots=True)
class ActivityPage:
    """Up to ``first`` activities, newest first, and whether more follow."""

    rows: Sequence[Activity]
    has_next: bool


async def add(
    session: AsyncSession,
    *,
    user_id: str,
    type: str,
    description: str = "",
    timestamp: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    seq: int | None = None,
) -> Activity:
    """Add an activity and its outbox entry in the caller's transaction.

    Args:
        timestamp: when it happened, timezone-aware; defaults to now (UTC).
        seq: the change-sequence number, when the caller already took one for
            this transaction; otherwise one is taken.

    Raises:
        InvalidInput: a field breaks a limit of :mod:`db.validation`.
    """
    check_user_id(user_id)
    check_type(type)
    check_description(description)
    metadata = check_metadata({} if metadata is None else metadata)
    if timestamp is not None:
        check_not_future(timestamp, field="timestamp", now=utcnow())
    if seq is None:
        seq = await outbox.next_seq(session, user_id=user_id)
    # Stamped after the sequence lock, so that stamps follow sequence order.
    now = utcnow()
    activity = Activity(
        user_id=user_id,
        seq=seq,
        type=type,
        description=description,
        timestamp=timestamp or now,
        metadata_=metadata,
        created_at=now,
    )
    session.add(activity)
    await session.flush()
    await outbox.append_activity(session, activity, committed_at=now)
    return activity


def check_page(first: int, types: Sequence[str] | None) -> None:
    """Raise :class:`InvalidInput` unless ``first`` is 1-100 and every type is valid."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidInput("first", f"must be between 1 and {MAX_PAGE_SIZE} (got {first})")
    if types is not None:
        if len(types) > MAX_TYPES:
            raise InvalidInput("types", f"must list at most {MAX_TYPES} types (got {len(types)})")
        for value in types:
            check_type(value, field="types")


async def _page(
    session: AsyncSession,
    stmt: Select[Activity],
    *,
    first: int,
    after: ActivityKey | None,
    types: Sequence[str] | None,
) -> ActivityPage:
    if types is not None:
        stmt = stmt.where(Activity.type.in_(types))
    if after is not None:
        stmt = stmt.where(
            tuple_(Activity.timestamp, Activity.id) < tuple_(after.timestamp, after.id)
        )
    stmt = stmt.order_by(Activity.timestamp.desc(), Activity.id.desc()).limit(first + 1)
    rows = (await session.scalars(stmt)).all()
    return ActivityPage(rows=rows[:first], has_next=len(rows) > first)


async def recent(
    session: AsyncSession,
    *,
    user_id: str,
    first: int = 20,
    after: ActivityKey | None = None,
    types: Sequence[str] | None = None,
) -> ActivityPage:
    """A page of one user's activities, newest first.

    Args:
        first: page size, 1-100.
        after: return only activities strictly older than this key.
        types: only these types; ``None`` for all, ``[]`` matches none.

    Raises:
        InvalidInput: ``first`` out of range, a bad type, or an empty user id.
    """
    check_user_id(user_id)
    check_page(first, types)
    stmt = select(Activity).where(Activity.user_id == user_id)
    return await _page(session, stmt, first=first, after=after, types=types)


_COLUMNS = Activity.__table__.c


async def recent_payloads(
    session: AsyncSession,
    *,
    user_id: str,
    first: int = 20,
    after: ActivityKey | None = None,
    types: Sequence[str] | None = None,
) -> tuple[list[ActivityPayload], bool]:
    """:func:`recent`'s page as payloads (:func:`db.payloads.activity_payload`), and whether
    more follow; read as rows, without ORM objects, for the query path.

    Raises:
        InvalidInput: as :func:`recent`.
    """
    check_user_id(user_id)
    check_page(first, types)
    c = _COLUMNS
    stmt = select(c.id, c.user_id, c.seq, c.type, c.description, c.timestamp, c.metadata)
    stmt = stmt.where(c.user_id == user_id)
    if types is not None:
        stmt = stmt.where(_COLUMNS.type.in_(types))
    if after is not None:
        stmt = stmt.where(
            tuple_(_COLUMNS.timestamp, _COLUMNS.id) < tuple_(after.timestamp, after.id)
        )
    stmt = stmt.order_by(_COLUMNS.timestamp.desc(), _COLUMNS.id.desc()).limit(first + 1)
    rows = (await session.execute(stmt)).all()
    payloads: list[ActivityPayload] = [
        {
            "id": id_,
            "user_id": owner,
            "seq": seq,
            "type": type_,
            "description": description,
            "timestamp": timestamp.isoformat(),
            "metadata": metadata,
        }
        for id_, owner, seq, type_, description, timestamp, metadata in rows[:first]
    ]
    return payloads, len(rows) > first


async def feed(
    session: AsyncSession,
    *,
    first: int = 20,
    after: ActivityKey | None = None,
    types: Sequence[str] | None = None,
) -> ActivityPage:
    """A page of every user's activities, newest first. Arguments as :func:`recent`."""
    check_page(first, types)
    return await _page(session, select(Activity), first=first, after=after, types=types)
