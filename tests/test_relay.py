"""The outbox relay: a failure after commit never loses or reorders an update."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from db import activities, create_engine, create_session_factory, outbox, snapshots, statuses
from db.migrate import upgrade
from db.models import OutboxEntry, OutboxKind
from db.sessions import SessionFactory
from sync import (
    ChangeEvent,
    Channels,
    Hub,
    Leadership,
    Publisher,
    RealtimeStore,
    Relay,
    StoreMirror,
    StoreUnavailable,
    Writer,
)
from sync.channels import user_channel
from sync.stores import UserState
from sync.stores.memory import MemoryStore
from sync.stores.state import from_snapshot

from .helpers.publishers import RecordingPublisher


class FlakyStore(MemoryStore):
    """A memory store that refuses writes for chosen users, like a store outage."""

    def __init__(self) -> None:
        super().__init__()
        self.down_for: set[str] = set()

    async def apply(self, event: ChangeEvent) -> UserState:
        if event.user_id in self.down_for:
            raise StoreUnavailable("store unreachable")
        return await super().apply(event)


def _relay(
    sessions: SessionFactory,
    store: RealtimeStore | None,
    publisher: Publisher,
    **options: float,
) -> Relay:
    return Relay(
        sessions=sessions,
        mirror=StoreMirror(sessions=sessions, store=store),
        publisher=publisher,
        **options,
    )


def _writer(relay: Relay, sessions: SessionFactory, *, timeout: float = 0.0) -> Writer:
    return relay.writer(timeout=timeout)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def _add(sessions: SessionFactory, user_id: str, n: int = 1) -> None:
    for _ in range(n):
        async with sessions.begin() as session:
            await activities.add(session, user_id=user_id, type="note")


async def _pending(sessions: SessionFactory) -> list[tuple[str, int]]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxEntry).where(OutboxEntry.published_at.is_(None)).order_by(OutboxEntry.id)
        )
        return [(row.user_id, row.seq) for row in rows]


async def test_store_failure_keeps_entries_pending_and_blocks_only_that_user(
    sessions: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore()
    store.down_for.add("sick")
    async with Hub("memory://") as broadcast:
        channels = Channels(broadcast, sessions=sessions)
        relay = _relay(sessions, store, channels, retry_base=0.01)
        async with channels.user_events("sick", OutboxKind.ACTIVITY) as sick_stream:
            await _add(sessions, "sick", 2)
            await _add(sessions, "well", 2)
            with caplog.at_level(logging.WARNING, logger="sync.relay"):
                await relay.run_once()
            # The healthy user is relayed; the failing one stays pending, both entries.
            assert await _pending(sessions) == [("sick", 1), ("sick", 2)]
            well = await store.get("well")
            assert well is not None and well.seq == 2
            [record] = [r for r in caplog.records if "failed" in r.getMessage()]
            assert "'sick'" in record.getMessage() and "outbox entry 1 " in record.getMessage()
            # Later entries of the failing user are not attempted ahead of the first.
            await _add(sessions, "sick", 1)
            await asyncio.sleep(0.05)
            store.down_for.clear()
            for _ in range(5):
                await relay.run_once()
                if not await _pending(sessions):
                    break
                await asyncio.sleep(0.05)
            assert await _pending(sessions) == []
            stream = aiter(sick_stream)
            seqs = [(await asyncio.wait_for(anext(stream), 1)).seq for _ in range(3)]
            assert seqs == [1, 2, 3]
        sick = await store.get("sick")
        assert sick is not None and sick.seq == 3 and sick.primed


async def test_publish_failure_is_retried_and_the_store_write_is_idempotent(
    sessions: SessionFactory,
) -> None:
    store = MemoryStore()
    async with Hub("memory://") as broadcast:
        publisher = RecordingPublisher(Channels(broadcast, sessions=sessions))
        publisher.fail_next = 1
        relay = _relay(sessions, store, publisher, retry_base=0.01)
        async with sessions.begin() as session:
            await statuses.update(session, user_id="u", changes={"alert_level": "ALERT"})
        await relay.run_once()
        assert await _pending(sessions) == [("u", 1)]
        state = await store.get("u")
        assert state is not None and state.status is not None  # applied before the publish failed
        await asyncio.sleep(0.05)
        await relay.run_once()
        assert await _pending(sessions) == []
        again = await store.get("u")
        assert again is not None and again.seq == 1 and again.status == state.status
        assert publisher.attempts == 2
        assert [event.seq for event in publisher.published] == [1]


async def test_a_user_the_store_lost_is_primed_again_from_the_database(
    sessions: SessionFactory,
) -> None:
    # A Redis restarted without persistence holds nothing: the next change of a
    # user must not leave an unprimed state that no read would ever fill.
    store = MemoryStore()
    async with Hub("memory://") as broadcast:
        relay = _relay(sessions, store, Channels(broadcast, sessions=sessions))
        await _add(sessions, "u", 3)
        async with sessions.begin() as session:
            await statuses.update(session, user_id="u", changes={"alert_level": "WARNING"})
        await relay.run_once()
        await store.forget()
        await _add(sessions, "u", 2)
        await relay.run_once()
    async with sessions() as session:
        snapshot = await snapshots.load(session, user_id="u", limit=store.window)
    state = await store.get("u")
    assert state is not None and state.primed
    assert state == from_snapshot(snapshot)
    assert state.seq == 6 and len(state.activities) == 5 and state.status is not None


async def test_the_store_keeps_up_with_the_database_while_publishing_fails(
    sessions: SessionFactory,
) -> None:
    # A broker outage holds publishing back; queries read the store, which must
    # not stop at the first entry that failed to publish.
    store = MemoryStore()
    async with Hub("memory://") as broadcast:
        publisher = RecordingPublisher(Channels(broadcast, sessions=sessions))
        publisher.down = True
        relay = _relay(sessions, store, publisher, retry_base=10.0)

        async def store_equals_database() -> UserState:
            async with sessions() as session:
                snapshot = await snapshots.load(session, user_id="u", limit=store.window)
            state = await store.get("u")
            assert state == from_snapshot(snapshot)
            return state

        await _add(sessions, "u", 2)
        await relay.run_once()  # seq 1 fails to publish and holds seq 2 back for ~10 s
        assert (await store_equals_database()).seq == 2
        await _add(sessions, "u", 2)
        await relay.run_once()
        assert (await store_equals_database()).seq == 4
        # A store that lost the user meanwhile is primed from the database.
        await store.forget()
        await _add(sessions, "u", 1)
        await relay.run_once()
        assert (await store_equals_database()).seq == 5
        assert await _pending(sessions) == [("u", seq) for seq in range(1, 6)]


async def test_entries_held_back_unclaimed_reach_the_store_and_free_their_writers(
    sessions: SessionFactory,
) -> None:
    store = MemoryStore()
    async with Hub("memory://") as broadcast:
        publisher = RecordingPublisher(Channels(broadcast, sessions=sessions))
        publisher.down = True
        relay = _relay(sessions, store, publisher, retry_base=10.0)
        await _add(sessions, "u", 2)
        # Seq 2 as if committed while a round ran: held back by the failure, never claimed.
        async with sessions.begin() as session:
            await session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.seq == 2)
                .values(next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
            )
        writer = _writer(relay, sessions)
        waiting = asyncio.create_task(writer.wait_published([2], timeout=5))
        await asyncio.sleep(0)
        started = asyncio.get_running_loop().time()
        await relay.run_once()
        assert await waiting is False
        assert asyncio.get_running_loop().time() - started < 1
        state = await store.get("u")
        assert state is not None and state.seq == 2 and len(state.activities) == 2


async def test_wait_published_resolves_for_the_writer(sessions: SessionFactory) -> None:
    async with Hub("memory://") as broadcast:
        channels = Channels(broadcast, sessions=sessions)
        async with _relay(sessions, None, channels, poll_interval=10) as relay:
            writer = _writer(relay, sessions)
            async with sessions.begin() as session:
                await activities.add(session, user_id="u", type="note")
                written = outbox.written(session)
            # A generator is consumed once: the waits must still be undone.
            assert await writer.wait_published(iter(written), timeout=2) is True
            assert await _pending(sessions) == []
            assert len(relay.waiters) == 0


async def test_a_write_transaction_waits_for_its_entries_to_be_published(
    sessions: SessionFactory,
) -> None:
    store = MemoryStore()
    async with Hub("memory://") as broadcast:
        channels = Channels(broadcast, sessions=sessions)
        async with _relay(sessions, store, channels, poll_interval=10) as relay:
            writer = _writer(relay, sessions, timeout=2)
            async with writer.transaction() as session:
                await activities.add(session, user_id="u", type="note")
            # No poll happened (10 s): the writer woke the relay and waited for it.
            assert await _pending(sessions) == []
            state = await store.get("u")
            assert state is not None and state.seq == 1

            async def failing_write() -> None:
                async with writer.transaction() as session:
                    await activities.add(session, user_id="u", type="note")
                    raise RuntimeError("rolled back")

            with pytest.raises(RuntimeError):
                await failing_write()
            async with sessions() as session:
                assert (await outbox.stream_bounds(session, user_id="u"))[0] == 1
            assert len(relay.waiters) == 0


async def test_a_writer_whose_relay_runs_elsewhere_polls_the_database(
    sessions: SessionFactory,
) -> None:
    class Follower(Leadership):
        @property
        def leading(self) -> bool:
            return False

    publisher = RecordingPublisher()
    relay = _relay(sessions, None, publisher)
    writer = Writer(
        sessions=sessions,
        leadership=Follower(),
        waiters=relay.waiters,
        wake=relay.notify,
        timeout=1,
    )
    async with sessions.begin() as session:
        await activities.add(session, user_id="u", type="note")
        written = outbox.written(session)
    assert await writer.wait_published(written, timeout=0.05) is False
    await relay.run_once()
    assert await writer.wait_published(written, timeout=1) is True
    assert len(relay.waiters) == 0


async def test_big_event_travels_as_a_reference(sessions: SessionFactory) -> None:
    async with Hub("memory://") as broadcast:
        channels = Channels(broadcast, sessions=sessions, max_message_bytes=500)
        relay = _relay(sessions, None, channels)
        async with (
            channels.user_events("u", OutboxKind.ACTIVITY) as stream,
            broadcast.subscribe(user_channel("u", OutboxKind.ACTIVITY)) as raw,
        ):
            async with sessions.begin() as session:
                await activities.add(
                    session, user_id="u", type="note", metadata={"blob": "x" * 4000}
                )
            await relay.run_once()
            message = await asyncio.wait_for(raw.get(), 1)
            assert len(message.message.encode()) <= 500
            assert ChangeEvent.decode(message.message).payload is None
            event = await asyncio.wait_for(anext(aiter(stream)), 1)
        assert event.payload is not None and event.payload["metadata"]["blob"] == "x" * 4000


async def test_relay_never_publishes_past_a_gap_in_the_claimed_batch(
    sessions: SessionFactory,
) -> None:
    # An entry committed ahead of an earlier-stamped one can be claimable while
    # the one before it is not yet due: the relay must stop at the gap.
    await _add(sessions, "u", 3)
    async with sessions.begin() as session:
        await session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.seq == 2)
            .values(next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
        )
    async with Hub("memory://") as broadcast:
        channels = Channels(broadcast, sessions=sessions)
        relay = _relay(sessions, None, channels)
        async with channels.user_events("u", OutboxKind.ACTIVITY) as stream:
            await relay.run_once()
            assert await _pending(sessions) == [("u", 2), ("u", 3)]
            async with sessions.begin() as session:
                await session.execute(update(OutboxEntry).values(next_attempt_at=datetime.now(UTC)))
            await relay.run_once()
            assert await _pending(sessions) == []
            events = aiter(stream)
            assert [(await anext(events)).seq for _ in range(3)] == [1, 2, 3]


async def test_published_entries_are_pruned_after_retention_pending_ones_never(
    sessions: SessionFactory,
) -> None:
    store = FlakyStore()
    store.down_for.add("sick")
    await _add(sessions, "well", 2)
    await _add(sessions, "sick", 1)
    async with Hub("memory://") as broadcast:
        channels = Channels(broadcast, sessions=sessions)
        relay = _relay(sessions, store, channels, retention=0.0)
        await relay.run_once()
        async with sessions() as session:
            count, oldest = await outbox.backlog(session, now=datetime.now(UTC))
        assert count == 1
        assert oldest > 0
        assert await relay.prune() == 2
    async with sessions() as session:
        left = [(e.user_id, e.seq) for e in await session.scalars(select(OutboxEntry))]
    assert left == [("sick", 1)]
