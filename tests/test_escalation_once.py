"""Escalation writes each step once: racing check-ins, concurrent escalators, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from db import AlertLevel, SessionFactory, checkins, create_engine, create_session_factory, utcnow
from db.escalations import parse_policy
from db.migrate import upgrade
from gql import Settings, create_app
from sync import Escalator, Leadership

from .helpers.escalation import (
    ALERT_DELAY,
    POLICY,
    escalation_types,
    outbox_seqs,
    overdue_status,
    seconds,
    status_of,
    wait_level,
)

BOTH = [("missed_check_in", "WARNING"), ("alert_triggered", "ALERT")]


async def _sessions(url: str) -> AsyncIterator[SessionFactory]:
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    """A migrated database (SQLite, then PostgreSQL) with no app running."""
    async for factory in _sessions(database_url):
        yield factory


@pytest.fixture
async def pg_sessions(postgres_url: str) -> AsyncIterator[SessionFactory]:
    async for factory in _sessions(postgres_url):
        yield factory


def _escalator(sessions: SessionFactory) -> Escalator:
    return Escalator(sessions=sessions, policy=parse_policy(POLICY), leadership=Leadership())


async def test_a_check_in_that_commits_first_wins(sessions: SessionFactory) -> None:
    read = await overdue_status(sessions, "u1", overdue=60)
    async with sessions.begin() as session:
        await checkins.record(session, user_id="u1", interval_seconds=3600)
    assert not await _escalator(sessions).escalate(read, now=utcnow())
    status = await status_of(sessions, "u1")
    assert status is not None and status.alert_level is AlertLevel.NONE
    assert await escalation_types(sessions, "u1") == []
    # The dropped escalation took no sequence number.
    assert await outbox_seqs(sessions, "u1") == [1, 2, 3]


async def test_concurrent_escalators_write_each_step_once(pg_sessions: SessionFactory) -> None:
    users = [f"u{i}" for i in range(20)]
    for user in users:
        await overdue_status(pg_sessions, user, overdue=60)
    # Both lead (no lease): only the version check keeps them from writing twice.
    first, second = _escalator(pg_sessions), _escalator(pg_sessions)
    for _ in range(3):
        await asyncio.gather(first.run_once(), second.run_once())
    for user in users:
        assert await escalation_types(pg_sessions, user) == BOTH, user
        assert await outbox_seqs(pg_sessions, user) == [1, 2, 3, 4], user
        status = await status_of(pg_sessions, user)
        assert status is not None and status.version == 2, user


async def test_a_restart_after_downtime_escalates_in_one_step_per_level(
    sessions: SessionFactory,
) -> None:
    await overdue_status(sessions, "long", overdue=600)
    short = await overdue_status(sessions, "short", overdue=0.5)
    async with _escalator(sessions):
        long_alert = await wait_level(sessions, "long", AlertLevel.ALERT, timeout=5)
        await wait_level(sessions, "short", AlertLevel.WARNING, timeout=5)
        short_alert = await wait_level(sessions, "short", AlertLevel.ALERT, timeout=10)
    # One transaction to the level reached: one status write, an activity per level.
    assert long_alert.version == 2
    assert await escalation_types(sessions, "long") == BOTH
    assert await escalation_types(sessions, "short") == BOTH
    assert short.next_due is not None and short_alert.version == 3
    assert 0 <= seconds(short_alert.updated_at, short.next_due) - ALERT_DELAY < 1.0


async def test_two_apps_on_postgresql_escalate_once(postgres_url: str) -> None:
    settings = Settings(
        database_url=postgres_url,
        relay_poll_interval=0.05,
        escalation_policy=POLICY,  # type: ignore[arg-type]
    )
    apps = [create_app(settings) for _ in range(2)]
    await asyncio.to_thread(upgrade, postgres_url)
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        sessions: SessionFactory = apps[0].state.services.sessions
        users = [f"u{i}" for i in range(10)]
        for user in users:
            await overdue_status(sessions, user, overdue=0)
        for user in users:
            await wait_level(sessions, user, AlertLevel.ALERT)
        for user in users:
            assert await escalation_types(sessions, user) == BOTH, user


async def test_back_dated_check_ins_leave_the_status_alone(sessions: SessionFactory) -> None:
    now = utcnow()
    async with sessions.begin() as session:
        _, first = await checkins.record(session, user_id="u1", interval_seconds=60, at=now)
    await overdue_status(sessions, "u1", overdue=5, alert_level=AlertLevel.WARNING)
    async with sessions.begin() as session:
        activity, status = await checkins.record(
            session, user_id="u1", interval_seconds=3600, at=now - timedelta(hours=1)
        )
    assert activity.timestamp == now - timedelta(hours=1)
    assert status.last_check_in == first.last_check_in
    assert status.alert_level is AlertLevel.WARNING and status.version == 2
    stored = await status_of(sessions, "u1")
    assert stored is not None and stored.next_due == status.next_due
    assert stored.version == 2 and stored.alert_level is AlertLevel.WARNING
    # The check-in's time itself is not back-dated: it resets as before.
    async with sessions.begin() as session:
        _, status = await checkins.record(session, user_id="u1", interval_seconds=60, at=now)
    assert status.alert_level is AlertLevel.NONE and status.version == 3
