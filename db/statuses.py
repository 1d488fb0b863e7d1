"""User status: one row per user, written with patch semantics."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from . import outbox
from ._upsert import insert_for
from .models import AlertLevel, UserStatus, utcnow
from .validation import InvalidInput, check_aware, check_not_future, check_user_id

__all__ = ["PATCHABLE_FIELDS", "VersionConflict", "get", "update"]

PATCHABLE_FIELDS = frozenset({"last_check_in", "next_due", "alert_level", "alert_triggered_at"})


class VersionConflict(Exception):
    """The status is not at the version the writer expected; nothing was written.

    Attributes:
        version: the current version (0: the user has no status yet).
    """

    def __init__(self, *, expected: int, version: int) -> None:
        super().__init__(
            f"the status is at version {version}, not {expected}: read it again and retry"
        )
        self.version = version


async def get(session: AsyncSession, *, user_id: str) -> UserStatus | None:
    """The user's status, or ``None`` when the user has none."""
    check_user_id(user_id)
    return await session.get(UserStatus, user_id, populate_existing=True)


def _check_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - PATCHABLE_FIELDS
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "is not a status field")
    checked = dict(changes)
    if "alert_level" in checked:
        level = checked["alert_level"]
        if level is None:
            raise InvalidInput("alert_level", "cannot be null; use NONE to clear an alert")
        checked["alert_level"] = AlertLevel(level)
    for name in ("last_check_in", "next_due", "alert_triggered_at"):
        value = checked.get(name)
        if isinstance(value, datetime):
            check_aware(value, field=name)
    if isinstance(last := checked.get("last_check_in"), datetime):
        # As for a check-in: a lastCheckIn in the future makes every later
        # check-in count as back-dated, and the user stays in alert.
        check_not_future(last, field="last_check_in", now=utcnow())
    return checked


async def update(
    session: AsyncSession,
    *,
    user_id: str,
    changes: Mapping[str, Any],
    seq: int | None = None,
    expected_version: int | None = None,
) -> UserStatus:
    """Create or patch the user's status in the caller's transaction, with an outbox entry.

    Args:
        changes: the fields to set, from :data:`PATCHABLE_FIELDS`; a field left
            out keeps its value, ``None`` clears a nullable field. A new status
            starts at alert level NONE with the other fields null.
        seq: the change-sequence number, when the caller already took one.
        expected_version: write only if the status is at this version now
            (0: the user has none yet); optimistic concurrency.

    Returns:
        The status after the write; ``version`` is 1 for a new row, +1 per write.

    Raises:
        InvalidInput: an unknown field, a null ``alert_level`` or a naive datetime.
        VersionConflict: ``expected_version`` is not the current version.
    """
    check_user_id(user_id)
    checked = _check_changes(changes)
    if seq is None:
        seq = await outbox.next_seq(session, user_id=user_id)
    if expected_version is not None and expected_version < 0:
        raise InvalidInput("expected_version", f"must be >= 0 (got {expected_version})")
    if expected_version is not None:
        # Read under the sequence lock: no other writer of this user runs now.
        current = await session.scalar(
            select(UserStatus.version).where(UserStatus.user_id == user_id)
        )
        if (current or 0) != expected_version:
            raise VersionConflict(expected=expected_version, version=current or 0)
    # Stamped after the sequence lock, so that stamps follow sequence order.
    now = utcnow()
    values: dict[str, Any] = {
        "user_id": user_id,
        "last_check_in": None,
        "next_due": None,
        "alert_level": AlertLevel.NONE,
        "alert_triggered_at": None,
        **checked,
        "version": 1,
        "seq": seq,
        "updated_at": now,
    }
    stmt = insert_for(session, UserStatus).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[UserStatus.user_id],
        set_={**checked, "version": UserStatus.version + 1, "seq": seq, "updated_at": now},
    ).returning(UserStatus)
    status: UserStatus = (
        await session.scalars(stmt, execution_options={"populate_existing": True})
    ).one()
    await outbox.append_status(session, status, committed_at=now)
    return status
