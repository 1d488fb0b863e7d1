"""db.dashboard.snapshot reads one moment, on SQLite and PostgreSQL, while writers commit.

Writers commit activities, status patches and check-ins (two changes in one
transaction) as fast as they can, and readers take snapshots meanwhile; the
outbox history then gives the state at every seq, and every snapshot must be
exactly the state at its watermark: nothing newer, nothing older.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from db import OutboxEntry, OutboxKind, SessionFactory, activities, checkins, statuses
from db.dashboard import MAX_ACTIVITIES, DashboardSnapshot, snapshot
from db.migrate import upgrade
from db.sessions import create_engine, create_session_factory
from db.validation import InvalidInput

USER = "s1"
WINDOW = 3
ROUNDS = 60

State = tuple[int, tuple[int, int] | None, tuple[int, ...]]


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url, **({} if "sqlite" in database_url else {"pool_size": 8}))
    yield create_session_factory(engine)
    await engine.dispose()


def _state(snap: DashboardSnapshot) -> State:
    status = None if snap.status is None else (snap.status["version"], snap.status["seq"])
    return snap.seq, status, tuple(a["seq"] for a in snap.activities)


async def _write(sessions: SessionFactory, round_: int) -> None:
    async with sessions.begin() as session:
        match round_ % 3:
            case 0:
                await activities.add(session, user_id=USER, type="note")
            case 1:
                level = ("WARNING", "ALERT")[round_ % 2]
                await statuses.update(session, user_id=USER, changes={"alert_level": level})
            case _:
                await checkins.record(session, user_id=USER, interval_seconds=60)


async def _history(sessions: SessionFactory) -> dict[int, State]:
    async with sessions() as session:
        entries = (
            await session.scalars(
                select(OutboxEntry).where(OutboxEntry.user_id == USER).order_by(OutboxEntry.seq)
            )
        ).all()
    states: dict[int, State] = {0: (0, None, ())}
    status: tuple[int, int] | None = None
    seqs: tuple[int, ...] = ()
    for entry in entries:
        if entry.kind == OutboxKind.STATUS:
            status = (entry.payload["version"], entry.seq)
        else:
            seqs = (entry.seq, *seqs)[:WINDOW]
        states[entry.seq] = (entry.seq, status, seqs)
    return states


async def test_every_snapshot_is_the_state_at_its_watermark(sessions: SessionFactory) -> None:
    done = asyncio.Event()
    seen: list[State] = []

    async def writer(offset: int) -> None:
        for round_ in range(offset, ROUNDS, 2):
            await _write(sessions, round_)
        done.set()

    async def reader() -> None:
        while not done.is_set():
            async with sessions() as session:
                seen.append(_state(await snapshot(session, user_id=USER, activities=WINDOW)))
            await asyncio.sleep(0)

    await asyncio.gather(writer(0), writer(1), reader(), reader(), reader())
    states = await _history(sessions)
    assert len(states) > ROUNDS  # check-ins are two changes each
    assert len({s[0] for s in seen}) > 5, f"snapshots did not interleave with writes: {seen}"
    for state in seen:
        assert state == states[state[0]], f"torn snapshot {state}, expected {states[state[0]]}"
    async with sessions() as session:
        final = _state(await snapshot(session, user_id=USER, activities=WINDOW))
    assert final == states[max(states)]


@pytest.mark.parametrize("count", [0, -1, MAX_ACTIVITIES + 1])
async def test_activities_out_of_range_are_refused(sessions: SessionFactory, count: int) -> None:
    async with sessions() as session:
        with pytest.raises(InvalidInput) as refused:
            await snapshot(session, user_id=USER, activities=count)
    assert refused.value.field == "activities"


async def test_a_user_without_changes_is_empty_at_zero(sessions: SessionFactory) -> None:
    async with sessions() as session:
        empty = await snapshot(session, user_id="nobody", activities=MAX_ACTIVITIES)
    assert (empty.seq, empty.status, list(empty.activities)) == (0, None, [])
