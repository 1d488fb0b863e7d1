"""Several relays on one PostgreSQL database: one publishes, each entry once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from db import SessionFactory, activities, create_engine, create_session_factory, outbox, utcnow
from db.leases import RelayLease, relay_lease
from gql import Settings, create_app
from sync import ChangeEvent, Leadership, Relay, StoreMirror, Writer

from .conftest import GraphQLClient, postgres_url_for
from .helpers.publishers import RecordingPublisher


@dataclass
class Instance:
    relay: Relay
    lease: RelayLease
    publisher: RecordingPublisher
    writer: Writer

    @property
    def published(self) -> list[ChangeEvent]:
        return self.publisher.published


@pytest.fixture
async def sessions(postgres_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(postgres_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def instances(
    postgres_url: str, sessions: SessionFactory
) -> AsyncIterator[Callable[..., Awaitable[Instance]]]:
    """Start relay instances on the test database, each with its own lease."""
    async with AsyncExitStack() as stack:

        async def start(*, poll_interval: float = 0.05) -> Instance:
            lease = relay_lease(postgres_url)
            assert lease is not None
            await stack.enter_async_context(lease)
            publisher = RecordingPublisher()
            leadership = Leadership(lease)
            relay = await stack.enter_async_context(
                Relay(
                    sessions=sessions,
                    mirror=StoreMirror(sessions=sessions, store=None),
                    publisher=publisher,
                    leadership=leadership,
                    poll_interval=poll_interval,
                )
            )
            return Instance(relay, lease, publisher, relay.writer(timeout=5.0))

        yield start


async def _write(sessions: SessionFactory, *, users: int, per_user: int) -> list[int]:
    """Interleaved activities of several users, one transaction each; their outbox ids."""
    ids: list[int] = []
    for i in range(per_user):
        for u in range(users):
            async with sessions.begin() as session:
                await activities.add(session, user_id=f"user{u}", type="note", description=str(i))
                ids += outbox.written(session)
    return ids


async def _drained(sessions: SessionFactory, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with sessions() as session:
            count, _ = await outbox.backlog(session, now=utcnow())
        if count == 0:
            return
        assert loop.time() < deadline, f"{count} entries still unpublished"
        await asyncio.sleep(0.02)


async def _until(condition: Callable[[], bool], timeout: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        assert loop.time() - start < timeout, "timed out"
        await asyncio.sleep(0.01)
    return loop.time() - start


def test_sqlite_needs_no_lease() -> None:
    assert relay_lease("sqlite+aiosqlite:///x.db") is None
    lease = relay_lease("postgresql+asyncpg://u:p%40ss@h:5432/db")
    assert lease is not None


async def test_one_relay_publishes_each_entry_once_in_order(
    instances: Callable[..., Awaitable[Instance]], sessions: SessionFactory
) -> None:
    first, second, third = [await instances() for _ in range(3)]
    await _until(lambda: sum(i.relay.leading for i in (first, second, third)) == 1, 5.0)
    ids = await _write(sessions, users=4, per_user=25)
    await _drained(sessions, timeout=10.0)
    everything = first.published + second.published + third.published
    assert sorted(e.outbox_id for e in everything) == sorted(ids)
    [leader] = [i for i in (first, second, third) if i.published]
    assert leader.relay.leading
    for user in range(4):
        seqs = [e.seq for e in leader.published if e.user_id == f"user{user}"]
        assert seqs == list(range(1, 26))


async def test_leader_hears_other_instances_writes_without_polling(
    instances: Callable[..., Awaitable[Instance]], sessions: SessionFactory
) -> None:
    # A poll interval far above the time allowed: only the NOTIFY can be fast enough.
    leader = await instances(poll_interval=30.0)
    await _until(lambda: leader.relay.leading, 5.0)
    # Let the first round (on start) finish, so the next one needs a wake-up.
    await asyncio.sleep(0.2)
    await _write(sessions, users=1, per_user=1)
    assert await _until(lambda: len(leader.published) == 1, 2.0) < 2.0


async def test_non_leader_waits_for_the_leader_not_for_the_timeout(
    instances: Callable[..., Awaitable[Instance]], sessions: SessionFactory
) -> None:
    leader = await instances()
    await _until(lambda: leader.relay.leading, 5.0)
    follower = await instances()
    await asyncio.sleep(0.1)
    assert not follower.relay.leading
    ids = await _write(sessions, users=1, per_user=2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await follower.writer.wait_published(ids, timeout=5.0) is True
    assert loop.time() - start < 1.0
    assert not follower.published


async def test_lease_moves_when_the_leader_loses_its_connection(
    instances: Callable[..., Awaitable[Instance]], sessions: SessionFactory
) -> None:
    # The old holder would take the lock back at its next try if it came first;
    # its long poll interval leaves the first try to the new one.
    old = await instances(poll_interval=30.0)
    await _until(lambda: old.relay.leading, 5.0)
    new = await instances()
    await _write(sessions, users=2, per_user=3)
    await _drained(sessions, timeout=5.0)
    assert old.lease.pid is not None
    admin = await asyncpg.connect(postgres_url_for("postgres", "postgresql"))
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", old.lease.pid)
    finally:
        await admin.close()
    taken_over = await _until(lambda: new.relay.leading and not old.relay.leading, 5.0)
    assert taken_over < 5.0
    ids = await _write(sessions, users=2, per_user=3)
    await _drained(sessions, timeout=5.0)
    assert {e.outbox_id for e in new.published} == set(ids)
    assert len(new.published) == len(ids)
    assert not old.relay.leading


async def test_a_process_local_store_is_read_only_where_the_relay_runs(
    postgres_url: str,
) -> None:
    settings = Settings(
        database_url=postgres_url,
        realtime_url="memory://",
        broadcast_url="memory://",
        relay_poll_interval=0.05,
    )
    update = (
        "mutation($u: String!, $l: AlertLevel!) "
        "{ updateUserStatus(input: {userId: $u, alertLevel: $l}) { version } }"
    )
    status = "query($u: String!) { userStatus(userId: $u) { version } }"
    first, second = create_app(settings), create_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(first.router.lifespan_context(first))
        await _until(lambda: first.state.services.relay.leading, 5.0)
        await stack.enter_async_context(second.router.lifespan_context(second))
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
            )
            for app in (first, second)
        ]
        leader, follower = (GraphQLClient(http) for http in clients)
        assert not second.state.services.relay.leading
        await leader.data(update, {"u": "u1", "l": "WARNING"})
        assert (await follower.data(status, {"u": "u1"}))["userStatus"]["version"] == 1
        await leader.data(update, {"u": "u1", "l": "ALERT"})
        # The follower's own memory store never hears of the second change.
        assert (await follower.data(status, {"u": "u1"}))["userStatus"]["version"] == 2
        assert (await leader.data(status, {"u": "u1"}))["userStatus"]["version"] == 2
