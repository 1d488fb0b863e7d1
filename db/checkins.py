"""Check-ins: one activity and one status change, in one transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from . import activities, outbox, statuses
from .models import Activity, AlertLevel, UserStatus, utcnow
from .validation import check_interval, check_not_future, check_user_id

__all__ = ["CHECK_IN_TYPE", "record"]

CHECK_IN_TYPE = "check_in"


async def record(
    session: AsyncSession,
    *,
    user_id: str,
    interval_seconds: int,
    at: datetime | None = None,
    description: str = "Checked in",
    metadata: dict[str, Any] | None = None,
) -> tuple[Activity, UserStatus]:
    """Record a check-in in the caller's transaction.

    Adds a ``check_in`` activity at ``at`` (default now, UTC) and sets the status:
    ``last_check_in = at``, ``next_due = at + interval_seconds``, alert level
    NONE and no alert time. Both changes get consecutive sequence numbers.

    A back-dated check-in (``at`` before the status's ``last_check_in``) is
    recorded as an activity only: it moves neither ``last_check_in`` nor
    ``next_due`` backwards and leaves the alert as it is; the status returned
    is the unchanged current one.

    Raises:
        InvalidInput: negative or over-long interval, naive ``at``, or the
            limits of :func:`db.activities.add`.
    """
    check_user_id(user_id)
    check_interval(interval_seconds)
    if at is not None:
        check_not_future(at, field="timestamp", now=utcnow())
    at = at or utcnow()
    # Taken first: the user's sequence lock makes the status read below current.
    seq = await outbox.next_seq(session, user_id=user_id)
    activity = await activities.add(
        session,
        user_id=user_id,
        type=CHECK_IN_TYPE,
        description=description,
        timestamp=at,
        metadata=metadata,
        seq=seq,
    )
    current = await statuses.get(session, user_id=user_id)
    if current is not None and current.last_check_in is not None and at < current.last_check_in:
        return activity, current
    # A time ahead of the server's clock (within the allowed skew) counts from
    # the server's: otherwise the next real check-in would look back-dated.
    counted = min(at, utcnow())
    status = await statuses.update(
        session,
        user_id=user_id,
        changes={
            "last_check_in": counted,
            "next_due": counted + timedelta(seconds=interval_seconds),
            "alert_level": AlertLevel.NONE,
            "alert_triggered_at": None,
        },
        seq=await outbox.next_seq(session, user_id=user_id),
    )
    return activity, status
