"""Helpers of the escalation tests: a policy of seconds, waits on the database, and reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from db import Activity, AlertLevel, OutboxEntry, SessionFactory, UserStatus, statuses, utcnow

POLICY = "WARNING:0,ALERT:2"
ALERT_DELAY = 2.0


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = ""
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.02)


async def status_of(sessions: SessionFactory, user_id: str) -> UserStatus | None:
    async with sessions() as session:
        return await statuses.get(session, user_id=user_id)


async def wait_level(
    sessions: SessionFactory, user_id: str, level: AlertLevel, *, timeout: float = 10.0
) -> UserStatus:
    """Wait until ``user_id`` is at ``level``; its status then."""

    async def reached() -> bool:
        status = await status_of(sessions, user_id)
        return status is not None and status.alert_level is level

    await wait_until(reached, timeout=timeout, what=f"{user_id} at {level}")
    status = await status_of(sessions, user_id)
    assert status is not None
    return status


async def activities_of(sessions: SessionFactory, user_id: str) -> list[Activity]:
    async with sessions() as session:
        stmt = select(Activity).where(Activity.user_id == user_id).order_by(Activity.seq)
        return list((await session.scalars(stmt)).all())


async def escalation_types(sessions: SessionFactory, user_id: str) -> list[tuple[str, Any]]:
    """``(type, metadata level)`` of the user's activities other than check-ins, in order."""
    return [
        (row.type, row.metadata_.get("level"))
        for row in await activities_of(sessions, user_id)
        if row.type != "check_in"
    ]


async def outbox_seqs(sessions: SessionFactory, user_id: str) -> list[int]:
    async with sessions() as session:
        stmt = select(OutboxEntry.seq).where(OutboxEntry.user_id == user_id)
        return sorted((await session.scalars(stmt)).all())


async def overdue_status(
    sessions: SessionFactory, user_id: str, *, overdue: float, **changes: Any
) -> UserStatus:
    """Commit a status of ``user_id`` whose ``next_due`` was ``overdue`` seconds ago."""
    async with sessions.begin() as session:
        return await statuses.update(
            session,
            user_id=user_id,
            changes={"next_due": utcnow() - timedelta(seconds=overdue), **changes},
        )


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()
