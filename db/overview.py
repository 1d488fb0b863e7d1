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

Indexed (``ix_user_status_urgency``, see :mod:`db.urgency`): without filters a
page is one range of the index from the cursor on. With filters it is one
range per alert level, ``first + 1`` rows each at most, merged: a filter on
``next_due`` cannot bound a scan of an index that leads with the level, but
with the level fixed it is a range of the index's second column. (SQLite
splits every page after a cursor so, as it seeks to a row comparison only
within one level.)
tests/test_overview_index.py checks the plans with 200,000 users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, Select, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

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


def _due_filter(overdue: bool | None, now: datetime) -> ColumnElement[bool] | None:
    # On the due key, the index's second column: next_due < now exactly when
    # COALESCE(next_due, DUE_NEVER) < now, since no now is later than DUE_NEVER.
    if overdue is None:
        return None
    return DueKey() < now if overdue else DueKey() >= now


def _levels(alert_levels: Sequence[AlertLevel] | None, after: StatusKey | None) -> list[int]:
    """The ranks a page may hold, most urgent first: those asked for, from the cursor's on."""
    ranks = (
        range(len(AlertLevel))
        if alert_levels is None
        else {rank(AlertLevel(v)) for v in alert_levels}
    )
    return sorted(r for r in ranks if after is None or r >= after.rank)


def _all_levels(first: int, after: StatusKey | None) -> Select[UserStatus]:
    """No filter: one range scan of the urgency index from the cursor on."""
    stmt = select(UserStatus)
    if after is not None:
        stmt = stmt.where(tuple_(Urgency(), DueKey(), UserStatus.user_id) > tuple_(*after))
    return stmt.order_by(Urgency(), DueKey(), UserStatus.user_id).limit(first + 1)


def _per_level(
    ranks: Sequence[int],
    due: ColumnElement[bool] | None,
    first: int,
    after: StatusKey | None,
    *,
    seek: bool,
) -> Select[UserStatus]:
    """Filters: one range scan per level, ``first + 1`` rows each at most, merged in order.

    The merge sorts at most ``4 * (first + 1)`` rows.
    """
    parts = []
    for level in ranks:
        part = select(UserStatus).where(Urgency() == level)
        if due is not None:
            part = part.where(due)
        if after is not None and level == after.rank:
            key = tuple_(DueKey(), UserStatus.user_id)
            part = part.where(key > tuple_(after.due, after.user_id))
            if seek:
                part = part.where(DueKey() >= after.due)
        part = part.order_by(DueKey(), UserStatus.user_id).limit(first + 1)
        if len(ranks) == 1:
            return part  # one level: its index range is the page, nothing to merge
        parts.append(select(part.subquery()))
    merged = union_all(*parts).subquery()
    # Urgency and DueKey compile to unqualified SQL: here they name the merged columns.
    return (
        select(aliased(UserStatus, merged))
        .order_by(Urgency(), DueKey(), merged.c.user_id)
        .limit(first + 1)
    )


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

    Every page reads at most ``first + 1`` index entries per level from
    ``ix_user_status_urgency``, whatever the filters and however deep the
    cursor. On SQLite a page after a cursor is always split per level, as
    SQLite seeks to a cursor only within one level.

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
    # SQLite seeks on a row comparison only with a plain range beside it, and
    # only within one level. PostgreSQL needs neither, and would count the
    # redundant range twice in its row estimate.
    seek = session.get_bind().dialect.name == "sqlite"
    if alert_levels is None and overdue is None and not (seek and after is not None):
        stmt = _all_levels(first, after)
    else:
        now = now or utcnow()
        ranks = _levels(alert_levels, after)
        if overdue is True and after is not None and after.due >= now:
            # The rest of the cursor's level is due at or after now: none of it is overdue.
            ranks = [r for r in ranks if r != after.rank]
        if not ranks:
            return StatusPage(rows=[], has_next=False)
        stmt = _per_level(ranks, _due_filter(overdue, now), first, after, seek=seek)
    rows = (await session.scalars(stmt)).all()
    return StatusPage(rows=rows[:first], has_next=len(rows) > first)
