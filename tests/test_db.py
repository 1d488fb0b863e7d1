"""Keyword-only db functions against a migrated database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from db import (
    InvalidInput,
    activities,
    checkins,
    create_engine,
    create_session_factory,
    snapshots,
    statuses,
)
from db.migrate import upgrade
from db.models import AlertLevel, OutboxEntry
from db.sessions import SessionFactory


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def test_concurrent_writers_get_gap_free_sequence_in_commit_order(
    sessions: SessionFactory,
) -> None:
    async def write(i: int) -> None:
        async with sessions.begin() as session:
            await activities.add(session, user_id="u", type="note", description=str(i))

    await asyncio.gather(*(write(i) for i in range(20)))
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxEntry).order_by(OutboxEntry.id))).all()
    assert [row.seq for row in rows] == list(range(1, 21))


async def test_timestamps_come_back_aware_utc(sessions: SessionFactory) -> None:
    plus_two = timezone(timedelta(hours=2))
    async with sessions.begin() as session:
        row = await activities.add(
            session, user_id="u", type="note", timestamp=datetime(2026, 1, 1, 12, tzinfo=plus_two)
        )
    async with sessions() as session:
        page = await activities.recent(session, user_id="u")
    [loaded] = page.rows
    assert loaded.id == row.id
    assert loaded.timestamp == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert loaded.timestamp.tzinfo is not None and loaded.timestamp.utcoffset() == timedelta(0)


async def test_naive_datetime_is_refused(sessions: SessionFactory) -> None:
    async with sessions.begin() as session:
        with pytest.raises(InvalidInput) as info:
            await activities.add(session, user_id="u", type="note", timestamp=datetime(2026, 1, 1))
    assert info.value.field == "timestamp"


async def test_check_in_is_one_transaction_with_two_changes(sessions: SessionFactory) -> None:
    at = datetime(2026, 5, 1, 8, tzinfo=UTC)
    async with sessions.begin() as session:
        await statuses.update(session, user_id="u", changes={"alert_level": AlertLevel.EMERGENCY})
    async with sessions.begin() as session:
        activity, status = await checkins.record(session, user_id="u", interval_seconds=7200, at=at)
    assert (activity.seq, activity.type, activity.timestamp) == (2, "check_in", at)
    assert status.next_due == at + timedelta(hours=2)
    assert status.alert_level is AlertLevel.NONE and status.version == 2
    async with sessions() as session:
        kinds = [
            (e.seq, e.kind.value)
            for e in await session.scalars(select(OutboxEntry).order_by(OutboxEntry.id))
        ]
    assert kinds == [(1, "status"), (2, "activity"), (3, "status")]


async def test_snapshot_reads_sequence_status_and_window(sessions: SessionFactory) -> None:
    for _ in range(3):
        async with sessions.begin() as session:
            await checkins.record(session, user_id="u", interval_seconds=60)
    async with sessions() as session:
        snap = await snapshots.load(session, user_id="u", limit=2)
    assert snap.seq == 6
    assert snap.status is not None and snap.status.version == 3
    assert len(snap.activities) == 2 and not snap.complete
    assert [a.seq for a in snap.activities] == [5, 3]


async def test_unknown_status_field_is_refused(sessions: SessionFactory) -> None:
    async with sessions.begin() as session:
        with pytest.raises(InvalidInput) as info:
            await statuses.update(session, user_id="u", changes={"version": 9})
    assert info.value.field == "version"


async def test_a_check_in_ahead_of_the_clock_counts_from_the_servers_time(
    database_url: str,
) -> None:
    # Within the allowed skew a client clock may run ahead; the next real
    # check-in must still reset the alert rather than look back-dated.
    from datetime import UTC, datetime, timedelta

    from db import checkins, create_engine, create_session_factory
    from db.migrate import upgrade

    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        sessions = create_session_factory(engine)
        ahead = datetime.now(UTC) + timedelta(seconds=200)
        async with sessions.begin() as session:
            _, first = await checkins.record(session, user_id="u", interval_seconds=60, at=ahead)
        assert first.last_check_in is not None and first.last_check_in < ahead
        async with sessions.begin() as session:
            _, second = await checkins.record(session, user_id="u", interval_seconds=60)
        assert second.version == 2
    finally:
        await engine.dispose()
