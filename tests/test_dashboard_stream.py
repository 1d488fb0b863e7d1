"""The dashboard's seam in sync/: merged inboxes in seq order, and how a stream ends.

Against a migrated SQLite database and a hub over a memory backend (one that
can drop its connection on demand, as a broker's does).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from broadcaster import Event

from db import OutboxKind, SessionFactory, activities, outbox, statuses
from db.migrate import upgrade
from db.models import OutboxEntry
from db.sessions import create_engine, create_session_factory
from sync import ChangeEvent, ChannelDisconnected, Channels, Hub
from sync.backends.memory import MemoryBackend
from sync.channels import user_channel
from sync.dashboard import DashboardUpdate, MergedInbox

USER = "m1"


class DroppingBackend(MemoryBackend):
    """``next_published`` fails once ``drop`` is set, as a lost broker connection does."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = asyncio.Event()

    async def next_published(self) -> Event:
        published = asyncio.ensure_future(super().next_published())
        dropped = asyncio.ensure_future(self.drop.wait())
        done, pending = await asyncio.wait({published, dropped}, return_when="FIRST_COMPLETED")
        for task in pending:
            task.cancel()
        if dropped in done:
            self.drop.clear()
            published.cancel()
            raise ConnectionError("connection reset by peer")
        return published.result()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[SessionFactory]:
    url = f"sqlite+aiosqlite:///{tmp_path}/checkin.db"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    yield create_session_factory(engine)
    await engine.dispose()


async def _commit(sessions: SessionFactory, kind: OutboxKind) -> ChangeEvent:
    """Commit one change of ``kind``; the event the relay would publish for it."""
    async with sessions.begin() as session:
        if kind is OutboxKind.ACTIVITY:
            await activities.add(session, user_id=USER, type="note")
        else:
            await statuses.update(session, user_id=USER, changes={"alert_level": "WARNING"})
        entry_id = outbox.written(session)[-1]
    async with sessions() as session:
        entry = await session.get(OutboxEntry, entry_id)
        assert entry is not None
        return ChangeEvent.from_entry(entry)


async def test_merged_inboxes_yield_in_seq_order_whichever_holds_the_next(
    sessions: SessionFactory,
) -> None:
    async with Hub("memory://") as hub:
        channels = Channels(hub, sessions=sessions)
        kinds = [OutboxKind.ACTIVITY, OutboxKind.STATUS, OutboxKind.STATUS, OutboxKind.ACTIVITY]
        events = [await _commit(sessions, kind) for kind in kinds * 3]
        async with (
            hub.subscribe(user_channel(USER, OutboxKind.ACTIVITY)) as added,
            hub.subscribe(user_channel(USER, OutboxKind.STATUS)) as changed,
        ):
            for event in events:
                await channels.publish(event)
            # Let the listener push everything before reading: both inboxes hold
            # events, and the merge must interleave them by seq.
            await _until(lambda: added.queued + changed.queued == len(events))
            merged = aiter(MergedInbox(added, changed))
            got = [ChangeEvent.decode((await anext(merged)).message).seq for _ in events]
            await merged.aclose()
        assert got == [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_lost_broker_ends_the_dashboard_with_its_resume_point(
    sessions: SessionFactory,
) -> None:
    backend = DroppingBackend()
    async with Hub(backend=backend) as hub:
        channels = Channels(hub, sessions=sessions)
        await _commit(sessions, OutboxKind.ACTIVITY)
        async with channels.dashboard(USER, activities=5) as stream:
            updates = aiter(stream)
            first: DashboardUpdate = await anext(updates)
            assert (first.seq, first.reset, len(first.activities)) == (1, True, 1)
            await channels.publish(await _commit(sessions, OutboxKind.STATUS))
            delta = await anext(updates)
            assert (delta.seq, delta.reset, delta.activities) == (2, False, [])
            assert delta.status is not None and delta.status["alert_level"] == "WARNING"
            backend.drop.set()
            with pytest.raises(ChannelDisconnected):
                await asyncio.wait_for(anext(updates), 2)
            # The resolver hands this back as extensions.after.
            assert stream.last_seq == 2
        assert hub.channels == 0


async def test_opening_while_the_broker_is_down_is_refused(sessions: SessionFactory) -> None:
    backend = DroppingBackend()
    async with Hub(backend=backend) as hub:
        backend.drop.set()
        await _until(lambda: not hub.healthy)
        channels = Channels(hub, sessions=sessions)
        with pytest.raises(ChannelDisconnected):
            async with channels.dashboard(USER, activities=5):
                pass
