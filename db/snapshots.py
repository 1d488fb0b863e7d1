"""Consistent per-user snapshots, used to (re)build the realtime store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Activity, UserSequence, UserStatus
from .validation import check_user_id

__all__ = ["UserSnapshot", "load", "user_ids"]


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    """A user's state as of change-sequence number ``seq`` (0: no change yet).

    ``activities`` are the newest ``limit`` activities, newest first;
    ``complete`` is true when the user has no older ones.
    """

    user_id: str
    seq: int
    status: UserStatus | None
    activities: Sequence[Activity]
    complete: bool


async def load(session: AsyncSession, *, user_id: str, limit: int) -> UserSnapshot:
    """Read a user's sequence, status and newest ``limit`` activities at one point in time.

    On PostgreSQL the reads run at REPEATABLE READ so all three come from one
    snapshot; SQLite transactions are serializable already. Call it on a
    session with no transaction begun.
    """
    check_user_id(user_id)
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    seq = await session.scalar(select(UserSequence.last_seq).where(UserSequence.user_id == user_id))
    status = await session.get(UserStatus, user_id, populate_existing=True)
    rows = (
        await session.scalars(
            select(Activity)
            .where(Activity.user_id == user_id)
            .order_by(Activity.timestamp.desc(), Activity.id.desc())
            .limit(limit + 1)
        )
    ).all()
    return UserSnapshot(
        user_id=user_id,
        seq=int(seq or 0),
        status=status,
        activities=rows[:limit],
        complete=len(rows) <= limit,
    )


async def user_ids(session: AsyncSession) -> Sequence[str]:
    """Every user with at least one change, in id order."""
    return (
        await session.scalars(select(UserSequence.user_id).order_by(UserSequence.user_id))
    ).all()
