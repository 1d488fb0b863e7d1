"""Fault test: the escalating instance crashes (SIGKILL) between its users' steps.

Instances A and B share PostgreSQL. A leads, so it relays and escalates. Thirty
users fall due over three seconds; once a third of them are at WARNING, A is
killed. B takes the lease over and escalates the rest: every user ends at
ALERT with exactly one activity per level, and a gap-free sequence.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from db import AlertLevel, SessionFactory, UserStatus, create_engine, create_session_factory, utcnow
from tests.helpers.escalation import escalation_types, outbox_seqs, wait_level, wait_until

from .conftest import ServerFactory
from .test_instance_crash import _wait_leader

USERS = [f"late-{i}" for i in range(30)]
UPDATE = """mutation($u: String!, $due: DateTime!) {
  updateUserStatus(input: {userId: $u, nextDue: $due}) { version }
}"""
BOTH = [("missed_check_in", "WARNING"), ("alert_triggered", "ALERT")]


@pytest.fixture
async def sessions(private_postgres_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(private_postgres_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def _escalated(sessions: SessionFactory) -> int:
    async with sessions() as session:
        stmt = select(func.count()).where(UserStatus.alert_level != AlertLevel.NONE)
        return int(await session.scalar(stmt) or 0)


@pytest.mark.timeout(90)
async def test_killing_the_escalating_instance_loses_and_duplicates_nothing(
    servers: ServerFactory, sessions: SessionFactory
) -> None:
    shared = {"ESCALATION_POLICY": "WARNING:0,ALERT:3", "RELAY_POLL_INTERVAL": "0.1"}
    a = servers(shared, name="a")
    await _wait_leader(a.base_url, timeout=10)
    b = servers(shared, name="b")
    start = utcnow() + timedelta(seconds=1)
    for i, user in enumerate(USERS):
        due = start + timedelta(seconds=0.1 * i)
        await a.execute(UPDATE, {"u": user, "due": due.isoformat()})

    async def a_third_escalated() -> bool:
        return await _escalated(sessions) >= len(USERS) // 3

    await wait_until(a_third_escalated, timeout=15, what="A's first escalations")
    a.kill()
    killed_at = time.monotonic()
    takeover = await _wait_leader(b.base_url, timeout=10)
    for user in USERS:
        await wait_level(sessions, user, AlertLevel.ALERT, timeout=20)
    print(
        f"\nA killed; B escalates {takeover:.2f} s later; all at ALERT"
        f" {time.monotonic() - killed_at:.2f} s after the kill"
    )
    for user in USERS:
        assert await escalation_types(sessions, user) == BOTH, user
        assert await outbox_seqs(sessions, user) == [1, 2, 3, 4, 5], user
