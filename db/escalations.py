"""Escalation of missed check-ins: the policy, the deadlines, and the write.

A policy is a list of :class:`Step`: ``delay`` seconds after ``next_due`` the
user's alert level rises to ``level``. A user's next deadline is ``next_due``
plus the delay of the first step above the current level, so each current
level needs one probe of ``ix_user_status_alert_level_next_due``.

:func:`escalate` raises the level in the caller's transaction, through the
outbox like any write, and only if the status still has the version it was
read with (:class:`statuses.VersionConflict` otherwise; the caller rolls back).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from . import activities, outbox, statuses
from .models import AlertLevel, UserStatus

__all__ = [
    "ALERT_TRIGGERED_TYPE",
    "MISSED_CHECK_IN_TYPE",
    "Policy",
    "Step",
    "due",
    "escalate",
    "next_deadline",
    "parse_policy",
]

MISSED_CHECK_IN_TYPE = "missed_check_in"
ALERT_TRIGGERED_TYPE = "alert_triggered"
_RANK = {level: rank for rank, level in enumerate(AlertLevel)}


@dataclass(frozen=True, slots=True)
class Step:
    """``seconds`` after ``next_due``, the alert level rises to ``level``."""

    level: AlertLevel
    seconds: float


Policy = tuple[Step, ...]


def _step(item: str) -> Step:
    name, sep, seconds_text = item.partition(":")
    levels = [level.value for level in AlertLevel if level is not AlertLevel.NONE]
    if not sep or name.strip() not in levels:
        raise ValueError(f"{item!r} is not LEVEL:SECONDS with LEVEL one of {','.join(levels)}")
    try:
        seconds = float(seconds_text)
    except ValueError:
        raise ValueError(f"{item!r}: seconds must be a number") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{item!r}: seconds must be a number >= 0")
    return Step(AlertLevel(name.strip()), seconds)


def parse_policy(text: str) -> Policy:
    """``"WARNING:0,ALERT:900"`` as steps; ``""`` is no escalation.

    Raises:
        ValueError: an unknown level, seconds that are negative or not a
            number, a level given twice, or levels and delays that do not
            rise together.
    """
    steps = tuple(_step(item) for item in text.split(",") if item.strip())
    for before, after in pairwise(steps):
        if before.level == after.level:
            raise ValueError(f"{after.level.value} is given twice")
        if _RANK[after.level] < _RANK[before.level] or after.seconds <= before.seconds:
            raise ValueError(
                "levels must rise with strictly rising delays, e.g. WARNING:0,ALERT:900"
            )
    return steps


def _step_above(policy: Policy, level: AlertLevel) -> Step | None:
    return next((step for step in policy if _RANK[step.level] > _RANK[level]), None)


def _levels_below_top(policy: Policy) -> list[AlertLevel]:
    return [level for level in AlertLevel if _step_above(policy, level) is not None]


def _after(moment: datetime, seconds: float) -> datetime | None:
    """``moment`` plus ``seconds``; ``None`` past the last representable time (never due)."""
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError:
        return None


async def next_deadline(session: AsyncSession, *, policy: Policy) -> datetime | None:
    """The earliest time at which some user's level is due to rise, ``None`` if never."""
    deadlines = []
    for level in _levels_below_top(policy):
        step = _step_above(policy, level)
        assert step is not None
        first = await session.scalar(
            select(UserStatus.next_due)
            .where(UserStatus.alert_level == level, UserStatus.next_due.is_not(None))
            .order_by(UserStatus.next_due)
            .limit(1)
        )
        if first is not None and (deadline := _after(first, step.seconds)) is not None:
            deadlines.append(deadline)
    return min(deadlines, default=None)


async def due(
    session: AsyncSession, *, policy: Policy, now: datetime, limit: int
) -> Sequence[UserStatus]:
    """Statuses whose level is due to rise at ``now``, most overdue first per level."""
    rows: list[UserStatus] = []
    for level in _levels_below_top(policy):
        step = _step_above(policy, level)
        assert step is not None
        stmt = (
            select(UserStatus)
            .where(
                UserStatus.alert_level == level,
                UserStatus.next_due <= now - timedelta(seconds=step.seconds),
            )
            .order_by(UserStatus.next_due)
            .limit(limit - len(rows))
        )
        rows.extend((await session.scalars(stmt)).all())
        if len(rows) >= limit:
            break
    return rows


def _reached(policy: Policy, status: UserStatus, now: datetime) -> list[Step]:
    """The steps above the status's level whose time has come."""
    assert status.next_due is not None
    overdue = (now - status.next_due).total_seconds()
    return [
        step
        for step in policy
        if _RANK[step.level] > _RANK[status.alert_level] and overdue >= step.seconds
    ]


def _metadata(step: Step, next_due: datetime, now: datetime) -> dict[str, Any]:
    return {
        "level": step.level.value,
        "nextDue": next_due.isoformat(),
        "overdueSeconds": round((now - next_due).total_seconds(), 3),
    }


async def escalate(
    session: AsyncSession, *, status: UserStatus, policy: Policy, now: datetime
) -> UserStatus | None:
    """Raise ``status`` (as read) to the highest level reached at ``now``, in one transaction.

    Adds one activity per level reached: ``missed_check_in`` for the step out
    of NONE, ``alert_triggered`` for each later one, with metadata
    ``{level, nextDue, overdueSeconds}``. ``alert_triggered_at`` is set when
    the level leaves NONE.

    Returns:
        The new status, or ``None`` when no level is due (nothing is written).

    Raises:
        statuses.VersionConflict: the status changed since it was read; roll back.
    """
    if status.next_due is None:
        return None
    reached = _reached(policy, status, now)
    if not reached:
        return None
    read_version, read_level, next_due = status.version, status.alert_level, status.next_due
    for i, step in enumerate(reached):
        first = i == 0 and read_level is AlertLevel.NONE
        await activities.add(
            session,
            user_id=status.user_id,
            type=MISSED_CHECK_IN_TYPE if first else ALERT_TRIGGERED_TYPE,
            description=f"Check-in missed: alert level {step.level.value}",
            metadata=_metadata(step, next_due, now),
        )
    changes: dict[str, Any] = {"alert_level": reached[-1].level}
    if read_level is AlertLevel.NONE:
        changes["alert_triggered_at"] = now
    return await statuses.update(
        session,
        user_id=status.user_id,
        changes=changes,
        seq=await outbox.next_seq(session, user_id=status.user_id),
        expected_version=read_version,
    )
