"""Reads fall back to the database on a store outage, and only on an outage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis import asyncio as aioredis

from db import checkins, create_engine, create_session_factory
from db.migrate import upgrade
from db.sessions import SessionFactory
from sync import Reader, StoreUnavailable, UserState
from sync.stores.memory import MemoryStore
from sync.stores.redis import RedisStore

from .conftest import redis_url


@pytest.fixture
async def sessions(tmp_path: str) -> AsyncIterator[SessionFactory]:
    url = f"sqlite+aiosqlite:///{tmp_path}/checkin.db"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    factory = create_session_factory(engine)
    async with factory.begin() as session:
        await checkins.record(session, user_id="u", interval_seconds=60)
    yield factory
    await engine.dispose()


class DownStore(MemoryStore):
    """A store in an outage: every call raises :class:`StoreUnavailable`."""

    async def get(self, user_id: str) -> UserState | None:
        raise StoreUnavailable("down for the test")

    async def prime(self, state: UserState) -> None:
        raise StoreUnavailable("down for the test")


class UndecodableStore(MemoryStore):
    """A store with a decoding bug: what it reads back is not a user state."""

    async def get(self, user_id: str) -> UserState | None:
        # A field this version does not know, as an old or foreign writer might leave.
        return UserState.from_json({"user_id": user_id, "sequence": 2})


async def _answers(reader: Reader) -> tuple[object, list[object]]:
    # The source is left out: when priming fails, the snapshot just read answers.
    status = await reader.user_status("u")
    page = await reader.recent_activities("u", first=5, after=None, types=None)
    return status, list(page.items)


async def test_an_outage_is_answered_from_the_database(sessions: SessionFactory) -> None:
    expected = await _answers(Reader(sessions=sessions, store=None))
    assert expected[0] is not None and len(expected[1]) == 1
    down = await _answers(Reader(sessions=sessions, store=DownStore()))
    assert down == expected
    # A real outage: nothing listens on port 1.
    async with RedisStore("redis://127.0.0.1:1/0") as unreachable:
        assert await _answers(Reader(sessions=sessions, store=unreachable)) == expected


async def test_a_store_that_cannot_decode_its_state_is_an_error(
    sessions: SessionFactory,
) -> None:
    reader = Reader(sessions=sessions, store=UndecodableStore())
    with pytest.raises(TypeError, match="sequence"):
        await reader.user_status("u")
    with pytest.raises(TypeError, match="sequence"):
        await reader.recent_activities("u", first=5, after=None, types=None)


async def test_a_redis_key_holding_garbage_is_an_error(
    sessions: SessionFactory, redis_prefix: str, redis_server: str
) -> None:
    async with RedisStore(redis_url(redis_prefix)) as store:
        reader = Reader(sessions=sessions, store=store)
        served = await reader.user_status("u")  # primes the store from the database
        assert served is not None and (await store.get("u")) is not None
        async with aioredis.Redis.from_url(redis_server) as client:
            await client.set(store.key("u"), b"not json")
        with pytest.raises(ValueError, match="Expecting value"):
            await reader.user_status("u")
