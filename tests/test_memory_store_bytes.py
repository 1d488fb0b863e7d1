"""The memory store is bounded in bytes as well as in users, and stays correct when it evicts."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from db import Activity, activities, create_engine, create_session_factory, outbox
from db.migrate import upgrade
from db.models import OutboxKind
from db.sessions import SessionFactory
from gql.settings import Settings
from sync import Reader, create_store
from sync.events import ChangeEvent
from sync.stores._sizes import estimated_bytes
from sync.stores.memory import DEFAULT_MAX_BYTES, MemoryStore

from .test_store_state import status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# About 10 KB of JSON, about 11 KB of Python objects.
BIG = {"note": "x" * 10_000}


def big_activity(seq: int, *, user_id: str = "u", metadata: Any = None) -> ChangeEvent:
    row = Activity(
        id=seq * 10,
        user_id=user_id,
        seq=seq,
        type="note",
        description="",
        timestamp=T0 + timedelta(minutes=seq),
        metadata_=BIG if metadata is None else metadata,
    )
    return ChangeEvent(seq, user_id, seq, OutboxKind.ACTIVITY, outbox.activity_payload(row), T0)


def heap_bytes(value: Any) -> int:
    """What the objects of JSON-shaped data take, walked one by one (slow, exact enough)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend([*item.keys(), *item.values()])
        elif isinstance(item, list):
            stack.extend(item)
    return total


def recount(store: MemoryStore) -> int:
    """The store's bytes estimated from scratch, to check its running total."""
    fresh = MemoryStore(window=store.window, max_bytes=store.max_bytes)
    for user_id in list(store._users):
        entry = store._users[user_id]
        fresh._put(entry.state)
    return fresh.bytes


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"lat": 51.5, "lon": -0.12, "device": "phone-12"},
        {"note": "x" * 16_000},
        {f"key{i:05}": "v" * 20 for i in range(500)},
        {"xs": list(range(100_000, 102_000))},
        # Small containers: little JSON, many objects.
        {"xs": [{} for _ in range(5_000)]},
        {"xs": [[] for _ in range(5_000)]},
        {"xs": [[[[{"b": [1, 2, {"c": "d"}]}]]] for _ in range(300)]},
    ],
    ids=["empty", "small", "string", "keys", "ints", "dicts", "lists", "nested"],
)
def test_the_estimate_follows_the_objects_not_the_json(metadata: dict[str, Any]) -> None:
    payload = json.loads(json.dumps(big_activity(1, metadata=metadata).payload))
    actual = heap_bytes(payload)
    assert 0.85 * actual <= estimated_bytes(payload) <= 3 * actual


async def test_users_beyond_the_byte_budget_are_evicted_least_recently_used() -> None:
    one_user = MemoryStore(window=5)
    await one_user.apply(big_activity(1))
    per_user = one_user.bytes
    assert per_user > 10_000
    # Room for two users, not three.
    store = MemoryStore(window=5, max_bytes=int(per_user * 2.5))
    for user in ("a", "b"):
        await store.apply(big_activity(1, user_id=user))
    assert await store.get("a") is not None  # "a" is now the most recently used
    await store.apply(big_activity(1, user_id="c"))
    assert await store.get("b") is None
    assert await store.get("a") is not None and await store.get("c") is not None
    assert store.bytes == 2 * per_user <= store.max_bytes


async def test_the_running_total_matches_a_recount() -> None:
    store = MemoryStore(window=3, max_bytes=10**9)
    # More activities than the window (old ones fall out), a status, an old event.
    for seq in range(1, 6):
        await store.apply(big_activity(seq))
    await store.apply(status(6, 1))
    await store.apply(status(7, 2))
    await store.apply(big_activity(3))
    await store.apply(big_activity(1, user_id="v", metadata={"xs": [{}] * 100}))
    assert store.bytes == recount(store)
    state = await store.get("u")
    assert state is not None and len(state.activities) == 3
    await store.prime(state)
    assert store.bytes == recount(store)
    await store.forget("u")
    assert store.bytes == recount(store) > 0
    await store.forget()
    assert store.bytes == 0 and len(store) == 0


async def test_a_user_larger_than_the_budget_is_not_kept() -> None:
    store = MemoryStore(window=5, max_bytes=5_000)
    state = await store.apply(big_activity(1))
    # The change is applied (the relay publishes it); the store just does not keep it.
    assert state.primed and state.seq == 1
    assert await store.get("u") is None and store.bytes == 0


def test_the_setting_reaches_the_store() -> None:
    assert Settings().store_max_bytes == DEFAULT_MAX_BYTES == 256 * 1024 * 1024
    store = create_store("memory://", max_bytes=2**20)
    assert isinstance(store, MemoryStore) and store.max_bytes == 2**20


@pytest.fixture
async def sessions(tmp_path: str) -> AsyncIterator[SessionFactory]:
    url = f"sqlite+aiosqlite:///{tmp_path}/checkin.db"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    factory = create_session_factory(engine)
    async with factory.begin() as session:
        for user in ("a", "b", "c"):
            for _ in range(3):
                await activities.add(session, user_id=user, type="note", metadata=BIG)
    yield factory
    await engine.dispose()


async def test_an_evicted_user_is_read_from_the_database_and_primed_again(
    sessions: SessionFactory,
) -> None:
    truth = Reader(sessions=sessions, store=None)
    store = MemoryStore(window=5, max_bytes=80_000)  # about two users of 3 x 10 KB
    cached = Reader(sessions=sessions, store=store)
    for user in ("a", "b", "c", "a", "c", "b"):
        expected = await truth.recent_activities(user, first=5, after=None, types=None)
        page = await cached.recent_activities(user, first=5, after=None, types=None)
        assert page.items == expected.items and len(page.items) == 3
        assert store.bytes <= store.max_bytes
    assert len(store) == 2 and await store.get("a") is None
    # Read again, the user is served from the store it was primed into.
    again = await cached.recent_activities("b", first=5, after=None, types=None)
    assert again.source == "store"
