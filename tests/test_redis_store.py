"""The Redis realtime store against a real Redis: the state rules hold under concurrent writers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import asyncio as aioredis
from redis.asyncio.client import Pipeline

from db import Activity, AlertLevel, OutboxKind, UserStatus, outbox
from sync import ChangeEvent, StoreUnavailable, create_store
from sync.stores._circuit import Circuit
from sync.stores.memory import MemoryStore
from sync.stores.redis import SOCKET_TIMEOUT_SECONDS, RedisStore
from sync.stores.state import UserState

from .conftest import redis_url

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _event(seq: int, user_id: str = "u1") -> ChangeEvent:
    at = BASE + timedelta(seconds=seq)
    if seq % 3 == 0:
        status = UserStatus(
            user_id=user_id,
            last_check_in=at,
            next_due=None,
            alert_level=AlertLevel.NONE,
            alert_triggered_at=None,
            version=seq // 3,
            seq=seq,
            updated_at=at,
        )
        return ChangeEvent(seq, user_id, seq, OutboxKind.STATUS, outbox.status_payload(status), at)
    activity = Activity(
        id=seq,
        user_id=user_id,
        seq=seq,
        type="note",
        description=f"#{seq}",
        timestamp=at,
        metadata_={},
    )
    return ChangeEvent(
        seq, user_id, seq, OutboxKind.ACTIVITY, outbox.activity_payload(activity), at
    )


@pytest.fixture
async def store(redis_prefix: str) -> AsyncIterator[RedisStore]:
    created = create_store(redis_url(redis_prefix), window=10)
    assert isinstance(created, RedisStore)
    async with created:
        yield created


async def test_prefix_comes_from_the_url(store: RedisStore, redis_prefix: str) -> None:
    assert store.key("u1") == f"{redis_prefix}user:u1"
    assert RedisStore("redis://localhost/0").prefix == "checkin:"


async def test_apply_then_get_round_trips(store: RedisStore) -> None:
    for seq in range(1, 5):
        await store.apply(_event(seq))
    state = await store.get("u1")
    expected = MemoryStore(window=10)
    for seq in range(1, 5):
        await expected.apply(_event(seq))
    assert state == await expected.get("u1")
    assert state is not None and state.primed and state.seq == 4
    assert await store.get("nobody") is None


class _Racing(aioredis.Redis):
    """A real client whose next watched GET is followed, before the write, by ``cut_in``.

    This pins down the interleaving that optimistic locking exists for: another
    instance writes the key between this one's read and its write.
    """

    cut_in: Callable[[], Awaitable[None]] | None = None

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        client = self

        class RacingPipeline(Pipeline):
            async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
                result = await super().immediate_execute_command(*args, **options)
                if args[0] == "GET" and client.cut_in is not None:
                    cut_in, client.cut_in = client.cut_in, None
                    await cut_in()
                return result

        return RacingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


async def test_a_write_between_read_and_write_is_not_lost(
    store: RedisStore, redis_prefix: str, redis_server: str
) -> None:
    for seq in (1, 2):
        await store.apply(_event(seq))
    racing_client = _Racing.from_url(redis_server)
    slow = RedisStore(client=racing_client, prefix=redis_prefix, window=10)

    async def other_instance_applies_3_and_4() -> None:
        await store.apply(_event(3))
        await store.apply(_event(4))

    racing_client.cut_in = other_instance_applies_3_and_4
    try:
        await slow.apply(_event(3))
    finally:
        await racing_client.aclose()
    state = await store.get("u1")
    assert state is not None
    # Without the WATCH the slow write would put the key back to seq 3,
    # and lose activity 4.
    assert state.seq == 4
    assert [a["seq"] for a in state.activities] == [4, 2, 1]


async def test_concurrent_appliers_agree_with_in_order_application(redis_prefix: str) -> None:
    # Four relays deliver the same stream at once (as after a lease hand-over).
    events = [_event(seq) for seq in range(1, 61)]
    stores = [RedisStore(redis_url(redis_prefix), window=10) for _ in range(4)]
    for each in stores:
        await each.connect()
    try:

        async def deliver(target: RedisStore, lag: int) -> None:
            for event in events:
                await target.apply(event)
                for _ in range(lag):
                    await asyncio.sleep(0)

        await asyncio.gather(*(deliver(each, lag) for lag, each in enumerate(stores)))
        expected = MemoryStore(window=10)
        for event in events:
            await expected.apply(event)
        assert await stores[0].get("u1") == await expected.get("u1")
    finally:
        for each in stores:
            await each.disconnect()


async def test_older_changes_never_overwrite_newer_ones(
    store: RedisStore, redis_prefix: str
) -> None:
    other = RedisStore(redis_url(redis_prefix), window=10)
    async with other:
        for seq in (1, 2, 3):
            await store.apply(_event(seq))
        # The other instance is behind and replays older changes.
        await other.apply(_event(2))
        await other.apply(_event(1))
        await other.prime(UserState(user_id="u1", seq=1, primed=True, complete=True))
    state = await store.get("u1")
    assert state is not None
    assert state.seq == 3
    assert [a["seq"] for a in state.activities] == [2, 1]
    assert state.status is not None and state.status["version"] == 1


async def test_newer_snapshot_replaces_older_state(store: RedisStore) -> None:
    await store.apply(_event(1))
    snapshot = UserState(user_id="u1", seq=7, primed=True, complete=False)
    await store.prime(snapshot)
    assert await store.get("u1") == snapshot


async def test_forget_removes_only_this_prefix(store: RedisStore, redis_prefix: str) -> None:
    neighbour = RedisStore(redis_url(redis_prefix + "neighbour:"))
    async with neighbour:
        await store.apply(_event(1, "a"))
        await store.apply(_event(1, "b"))
        await neighbour.apply(_event(1, "a"))
        await store.forget("a")
        assert await store.get("a") is None
        assert await store.get("b") is not None
        await store.forget()
        assert await store.get("b") is None
        assert await neighbour.get("a") is not None


async def test_unreachable_redis_raises_store_unavailable() -> None:
    # Port 1 on loopback refuses connections at once.
    store = RedisStore("redis://127.0.0.1:1/0")
    async with store:
        assert await store.ping() is False
        with pytest.raises(StoreUnavailable):
            await store.apply(_event(1))
        with pytest.raises(StoreUnavailable):
            await store.get("u1")
        with pytest.raises(StoreUnavailable):
            await store.forget()


async def test_ping_answers_when_redis_is_up(store: RedisStore) -> None:
    assert await store.ping() is True


def test_circuit_opens_on_failure_and_lets_one_trial_through_after_the_cooldown() -> None:
    now = 0.0
    circuit = Circuit(1.0, clock=lambda: now)
    assert circuit.allow() and circuit.allow()  # closed: everything goes
    circuit.failed()
    assert not circuit.allow()
    now = 1.0
    assert circuit.allow()  # the trial
    assert not circuit.allow()  # the others wait for its outcome
    circuit.failed()
    now = 1.5
    assert not circuit.allow()
    now = 2.0
    assert circuit.allow()
    circuit.abandoned()  # e.g. cancelled: another trial may go
    assert circuit.allow()
    circuit.succeeded()
    assert circuit.closed and circuit.allow() and circuit.allow()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers, like a frozen Redis."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        host, port = listener.getsockname()
        yield f"redis://{host}:{port}/0"


async def test_a_silent_redis_costs_one_short_timeout_then_calls_fail_fast(
    silent_server: str,
) -> None:
    # redis-py waits 5 s by default; every read would wait that long before
    # falling back to the database.
    store = RedisStore(silent_server, cooldown=0.5)
    async with store:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="Timeout"):
            await store.get("u1")
        assert time.monotonic() - started < SOCKET_TIMEOUT_SECONDS + 1.0
        started = time.monotonic()
        for _ in range(50):
            with pytest.raises(StoreUnavailable, match="skipped"):
                await store.get("u1")
            with pytest.raises(StoreUnavailable, match="skipped"):
                await store.apply(_event(1))
        assert time.monotonic() - started < 0.1
        await asyncio.sleep(0.5)
        with pytest.raises(StoreUnavailable, match="Timeout"):  # the trial, after the cooldown
            await store.get("u1")


async def test_a_timeout_in_the_url_wins_over_the_default(silent_server: str) -> None:
    store = RedisStore(silent_server + "?socket_timeout=0.2&socket_connect_timeout=0.2")
    async with store:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.get("u1")
        assert time.monotonic() - started < SOCKET_TIMEOUT_SECONDS


async def test_the_store_recovers_after_the_cooldown(store: RedisStore) -> None:
    store.circuit.cooldown = 0.2
    store.circuit.failed()
    with pytest.raises(StoreUnavailable, match="skipped"):
        await store.get("u1")
    await asyncio.sleep(0.2)
    await store.apply(_event(1))
    assert store.circuit.closed
    state = await store.get("u1")
    assert state is not None and state.seq == 1
