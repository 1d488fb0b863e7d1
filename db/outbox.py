"""The outbox: committed changes waiting to be relayed, and each user's change sequence.

Write functions here run inside the caller's transaction; they never commit.

On PostgreSQL, :func:`append` also sends a notification on
:data:`NOTIFY_CHANNEL`: PostgreSQL delivers it when (and only if) the
transaction commits, so the relay of another process can pick the entry up
at once instead of at its next poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ._upsert import insert_for
from .models import Activity, OutboxEntry, OutboxKind, UserSequence, UserStatus, utcnow
from .payloads import Payload, activity_payload, status_payload

__all__ = [
    "NOTIFY_CHANNEL",
    "activity_payload",
    "after",
    "append_activity",
    "append_status",
    "backlog",
    "carry_trace",
    "get",
    "mark_failed",
    "mark_published",
    "next_seq",
    "pending",
    "pending_heads",
    "prune",
    "status_payload",
    "stream_bounds",
    "unpublished",
    "written",
]

_WRITTEN_KEY = "outbox.written"
_TRACE_KEY = "outbox.trace_parent"
# Notified (payload '') by every PostgreSQL transaction that appends an entry.
NOTIFY_CHANNEL = "checkin_outbox"


async def next_seq(session: AsyncSession, *, user_id: str) -> int:
    """Take the next number of ``user_id``'s change sequence (1, 2, 3, ...).

    The upsert locks the user's sequence row until the transaction ends, so
    concurrent writers of one user queue here and commit in sequence order.
    """
    stmt = insert_for(session, UserSequence).values(user_id=user_id, last_seq=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[UserSequence.user_id],
        set_={"last_seq": UserSequence.last_seq + 1},
    ).returning(UserSequence.last_seq)
    return int((await session.execute(stmt)).scalar_one())


async def append_activity(
    session: AsyncSession, activity: Activity, *, committed_at: datetime
) -> OutboxEntry:
    """Add the entry of a new ``activity`` (already flushed) in the caller's transaction."""
    return await _append(
        session,
        activity.user_id,
        activity.seq,
        OutboxKind.ACTIVITY,
        activity_payload(activity),
        committed_at,
    )


async def append_status(
    session: AsyncSession, status: UserStatus, *, committed_at: datetime
) -> OutboxEntry:
    """Add the entry of a changed ``status`` (already flushed) in the caller's transaction."""
    return await _append(
        session, status.user_id, status.seq, OutboxKind.STATUS, status_payload(status), committed_at
    )


async def _append(
    session: AsyncSession,
    user_id: str,
    seq: int,
    kind: OutboxKind,
    payload: Payload,
    committed_at: datetime,
) -> OutboxEntry:
    # One builder per kind above keeps kind and payload in agreement. The id is
    # kept on the session for sync.Writer, which waits for it after the commit.
    entry = OutboxEntry(
        user_id=user_id,
        seq=seq,
        kind=kind,
        payload=payload,
        committed_at=committed_at,
        attempts=0,
        next_attempt_at=committed_at,
        trace_parent=session.info.get(_TRACE_KEY),
    )
    session.add(entry)
    await session.flush()
    session.info.setdefault(_WRITTEN_KEY, []).append(entry.id)
    if session.get_bind().dialect.name == "postgresql":
        # Identical notifications of one transaction are delivered once.
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))
    return entry


def carry_trace(session: AsyncSession, trace_parent: str | None) -> None:
    """Stamp the entries this session appends from now on with ``trace_parent`` (W3C)."""
    session.info[_TRACE_KEY] = trace_parent


def written(session: AsyncSession) -> list[int]:
    """Ids of the outbox entries this session has appended, in order."""
    return list(session.info.get(_WRITTEN_KEY, []))


async def get(session: AsyncSession, *, entry_id: int) -> OutboxEntry | None:
    """One entry by id, or ``None`` once it has been pruned."""
    return await session.get(OutboxEntry, entry_id)


async def pending(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[OutboxEntry]:
    """Unpublished entries due for an attempt, oldest first (by id).

    For one user, id order is sequence order: the id is drawn after the
    sequence number, under the same row lock.
    """
    stmt = (
        select(OutboxEntry)
        .where(OutboxEntry.published_at.is_(None), OutboxEntry.next_attempt_at <= now)
        .order_by(OutboxEntry.id)
        .limit(limit)
    )
    return (await session.scalars(stmt)).all()


async def unpublished(session: AsyncSession, *, entry_ids: Sequence[int]) -> set[int]:
    """Those of ``entry_ids`` that are still waiting to be published (pruned ones are not)."""
    if not entry_ids:
        return set()
    stmt = select(OutboxEntry.id).where(
        OutboxEntry.id.in_(entry_ids), OutboxEntry.published_at.is_(None)
    )
    return set((await session.scalars(stmt)).all())


async def pending_heads(session: AsyncSession, *, user_ids: Sequence[str]) -> dict[str, int]:
    """For each user, the lowest unpublished sequence number."""
    if not user_ids:
        return {}
    stmt = (
        select(OutboxEntry.user_id, func.min(OutboxEntry.seq))
        .where(OutboxEntry.published_at.is_(None), OutboxEntry.user_id.in_(user_ids))
        .group_by(OutboxEntry.user_id)
    )
    return {user_id: int(seq) for user_id, seq in (await session.execute(stmt)).all()}


async def mark_published(
    session: AsyncSession, *, entry_ids: Sequence[int], at: datetime | None = None
) -> None:
    """Record that these entries reached the store and the broker."""
    if entry_ids:
        await session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id.in_(entry_ids))
            .values(published_at=at or utcnow())
        )


async def mark_failed(
    session: AsyncSession, *, user_id: str, entry_id: int, error: str, retry_at: datetime
) -> None:
    """Count a failed attempt and hold back all of the user's pending entries until ``retry_at``.

    Holding back the later entries keeps them from being claimed (and
    blocked) ahead of the failed one, which would waste relay batches.
    """
    await session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == entry_id)
        .values(attempts=OutboxEntry.attempts + 1, last_error=error[:2000])
    )
    await session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.user_id == user_id, OutboxEntry.published_at.is_(None))
        .values(next_attempt_at=retry_at)
    )


async def prune(session: AsyncSession, *, published_before: datetime) -> int:
    """Delete entries published before the given time; return how many."""
    result = await session.execute(
        delete(OutboxEntry).where(
            OutboxEntry.published_at.is_not(None), OutboxEntry.published_at < published_before
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def backlog(session: AsyncSession, *, now: datetime) -> tuple[int, float]:
    """Unpublished entries: how many, and the age in seconds of the oldest (0.0 if none)."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(OutboxEntry.committed_at)).where(
                OutboxEntry.published_at.is_(None)
            )
        )
    ).one()
    if oldest is None:
        return int(count), 0.0
    oldest = _aware(oldest)
    return int(count), max(0.0, (now - oldest).total_seconds())


def _aware(value: datetime) -> datetime:
    # Aggregates bypass the column type on SQLite and come back as naive text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def after(
    session: AsyncSession,
    *,
    user_id: str,
    seq: int,
    kinds: Sequence[OutboxKind] | None = None,
    limit: int = 1000,
) -> Sequence[OutboxEntry]:
    """Committed entries of ``user_id`` with a sequence number above ``seq``, in order.

    Published or not: replay serves what is committed, and live delivery
    skips what replay already served.
    """
    stmt = select(OutboxEntry).where(OutboxEntry.user_id == user_id, OutboxEntry.seq > seq)
    if kinds is not None:
        stmt = stmt.where(OutboxEntry.kind.in_(list(kinds)))
    return (await session.scalars(stmt.order_by(OutboxEntry.seq).limit(limit))).all()


async def stream_bounds(session: AsyncSession, *, user_id: str) -> tuple[int, int | None]:
    """``(last_seq, first_retained_seq)`` of a user's stream.

    ``last_seq`` is 0 for a user with no change; ``first_retained_seq`` is the
    lowest sequence number still in the outbox, ``None`` when all are pruned.
    """
    last = await session.scalar(
        select(UserSequence.last_seq).where(UserSequence.user_id == user_id)
    )
    first = await session.scalar(
        select(func.min(OutboxEntry.seq)).where(OutboxEntry.user_id == user_id)
    )
    return int(last or 0), None if first is None else int(first)
