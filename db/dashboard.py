"""A user's dashboard at one watermark: status and newest activities as of one ``seq``.

The three reads (the user's last sequence number, the status, the newest
activities) run in one transaction that sees one snapshot: PostgreSQL at
REPEATABLE READ (its default READ COMMITTED would let each statement see
later commits), SQLite in its ``BEGIN IMMEDIATE`` transaction (no other
writer commits until it ends). On top of that, activities are cut at the
watermark (``seq <= watermark``) and a status newer than it is refused, so
nothing in a snapshot is newer than its ``seq`` even if an engine were
configured differently. Nothing is older either: every sequence number up to
the watermark is committed, since a user's writers take their numbers under
one row lock held until commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Activity, UserSequence, UserStatus
from .payloads import ActivityPayload, StatusPayload, activity_payload, status_payload
from .validation import InvalidInput, check_user_id

__all__ = ["MAX_ACTIVITIES", "DashboardSnapshot", "TornRead", "check_activities", "snapshot"]

#: Most activities a snapshot carries.
MAX_ACTIVITIES = 100


class TornRead(RuntimeError):
    """The reads of a snapshot did not see one state (the transaction was not isolated)."""


@dataclass(frozen=True, slots=True)
class DashboardSnapshot:
    """What the database held for ``user_id`` once its change stream reached ``seq``.

    Attributes:
        seq: the watermark, the user's last sequence number then (0: no change yet).
        status: the status then, ``None`` when the user had none.
        activities: the newest activities then, newest first (by ``seq``, commit order).
    """

    user_id: str
    seq: int
    status: StatusPayload | None
    activities: Sequence[ActivityPayload]


def check_activities(activities: int) -> None:
    """Raise :class:`InvalidInput` unless ``activities`` is 1-:data:`MAX_ACTIVITIES`."""
    if not 1 <= activities <= MAX_ACTIVITIES:
        raise InvalidInput(
            "activities", f"must be between 1 and {MAX_ACTIVITIES} (got {activities})"
        )


async def snapshot(session: AsyncSession, *, user_id: str, activities: int) -> DashboardSnapshot:
    """Read ``user_id``'s status and newest ``activities`` activities at one watermark.

    Call it on a session with no transaction begun; it begins one and leaves
    it to the caller's ``async with`` to end.

    Raises:
        InvalidInput: an empty or over-long user id, ``activities`` out of 1-100.
        TornRead: the reads saw different moments (only if isolation is broken).
    """
    check_user_id(user_id)
    check_activities(activities)
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    # The bound first: whatever is read after it is cut at it.
    watermark = int(
        await session.scalar(select(UserSequence.last_seq).where(UserSequence.user_id == user_id))
        or 0
    )
    status = await session.scalar(
        select(UserStatus)
        .where(UserStatus.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    if status is not None and status.seq > watermark:
        raise TornRead(f"status of {user_id!r} at seq {status.seq} is past watermark {watermark}")
    rows = (
        await session.scalars(
            select(Activity)
            .where(Activity.user_id == user_id, Activity.seq <= watermark)
            .order_by(Activity.seq.desc())
            .limit(activities)
        )
    ).all()
    return DashboardSnapshot(
        user_id=user_id,
        seq=watermark,
        status=None if status is None else status_payload(status),
        activities=[activity_payload(row) for row in rows],
    )
