"""The care-team overview: every user's status, most urgent first, keyset-paginated.

Order: alert level descending (EMERGENCY, ALERT, WARNING, NONE), then
``next_due`` ascending with none last, then ``user_id``; the key is
:class:`StatusKey` (see :mod:`db.urgency`). A page starts strictly after a
key, not at an offset, so what "stable" means under concurrent writes is:

* a user whose status does not change between two pages is on exactly one
  of them, whatever other users do meanwhile;
* a user whose level or ``next_due`` changes in between moves to its new
  position: it is seen again if it moved behind the cursor, and not at all
  if it moved ahead of it. Subscribe to ``userStatusFeed`` to see those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from .activities import MAX_PAGE_SIZE
from .models import AlertLevel, UserStatus, utcnow
from .urgency import DUE_NEVER, DueKey, Urgency, rank
from .validation import InvalidInput

__all__ = ["StatusKey", "StatusPage", "page"]


class StatusKey(NamedTuple):
    """Position of a status in urgency order: (level rank, next_due or DUE_NEVER, user id)."""

    rank: int
    due: datetime
    user_id: str

    @classmethod
    def of(cls, status: UserStatus) -> StatusKey:
        due = DUE_NEVER if status.next_due is None else status.next_due
        return cls(rank(status.alert_level), due, status.user_id)


@dataclass(frozen=True, slots=True)
class StatusPage:
    """Up to ``first`` statuses, most urgent first, and whether more follow."""

    rows: Sequence[UserStatus]
    has_next: bool


def _filters(
    alert_levels: Sequence[AlertLevel] | None, overdue: bool | None, now: datetime
) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if alert_levels is not None:
        # On the rank, the index's leading column, rather than on the level.
        found.append(Urgency().in_(sorted({rank(AlertLevel(v)) for v in alert_levels})))
    if overdue is True:
        found.append(UserStatus.next_due < now)
    elif overdue is False:
        found.append(or_(UserStatus.next_due.is_(None), UserStatus.next_due >= now))
    return found


async def page(
    session: AsyncSession,
    *,
    first: int = 50,
    after: StatusKey | None = None,
    alert_levels: Sequence[AlertLevel] | None = None,
    overdue: bool | None = None,
    now: datetime | None = None,
) -> StatusPage:
    """A page of every user's status, most urgent first.

    Args:
        first: page size, 1-100.
        after: return only statuses strictly after this key.
        alert_levels: only these levels; ``None`` for all, ``[]`` matches none.
        overdue: ``True``: only ``next_due < now``; ``False``: only the others
            (no ``next_due``, or not yet due); ``None``: both.
        now: the time ``overdue`` compares with; defaults to now (UTC).

    Raises:
        InvalidInput: ``first`` out of range.
    """
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidInput("first", f"must be between 1 and {MAX_PAGE_SIZE} (got {first})")
    key = tuple_(Urgency(), DueKey(), UserStatus.user_id)
    stmt = select(UserStatus).where(*_filters(alert_levels, overdue, now or utcnow()))
    if after is not None:
        stmt = stmt.where(key > tuple_(*after))
    stmt = stmt.order_by(Urgency(), DueKey(), UserStatus.user_id).limit(first + 1)
    rows = (await session.scalars(stmt)).all()
    return StatusPage(rows=rows[:first], has_next=len(rows) > first)
