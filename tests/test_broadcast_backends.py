"""Broker backends against real Redis and PostgreSQL: delivery, lost connections, readiness."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

import asyncpg
import broadcaster
import httpx
import pytest
from broadcaster import BroadcastBackend
from fastapi import FastAPI
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from db.migrate import upgrade
from gql import Settings, create_app
from sync import ChannelDisconnected, Hub
from sync.backends import create_backend
from sync.backends.memory import MemoryBackend
from sync.backends.postgres import LISTEN_APPLICATION_NAME, PostgresBackend, asyncpg_dsn
from sync.backends.redis import RedisBackend

from .conftest import REDIS_URL, GraphQLClient, postgres_url_for, redis_url, websocket
from .helpers import ACTIVITY_ADDED, TRANSPORT_WS, Protocol

RECEIVE_TIMEOUT = 5.0


async def _next(subscriber: Any, timeout: float = RECEIVE_TIMEOUT) -> str:
    event = await asyncio.wait_for(subscriber.get(), timeout)
    message: str = event.message
    return message


@pytest.fixture
def redis_broker_url(redis_prefix: str) -> str:
    return redis_url(redis_prefix)


@pytest.fixture
def pg_broker_url(postgres_url: str) -> str:
    # The SQLAlchemy spelling on purpose: the backend must strip "+asyncpg".
    return postgres_url


def test_backend_is_chosen_by_scheme() -> None:
    assert isinstance(create_backend("redis://localhost:6379/0?prefix=x:"), RedisBackend)
    assert isinstance(create_backend("postgresql+asyncpg://u@h/db"), PostgresBackend)
    assert isinstance(create_backend("postgres://u@h/db"), PostgresBackend)
    assert isinstance(create_backend("memory://"), MemoryBackend)
    with pytest.raises(ValueError, match="kafka"):
        create_backend("kafka://localhost")
    assert asyncpg_dsn("postgresql+asyncpg://u:p@h:5/db?ssl=require") == (
        "postgresql://u:p@h:5/db?ssl=require"
    )


async def _first_event_arrives(backend: BroadcastBackend, channel: str) -> bool:
    """Whether the first subscriber of ``channel`` receives the first event published on it."""
    async with Hub(backend=backend) as hub, hub.subscribe(channel) as subscriber:
        await hub.publish(channel, "first")
        try:
            return await _next(subscriber, timeout=1.0) == "first"
        except TimeoutError:
            return False


async def test_first_subscriber_of_a_fresh_redis_channel_gets_the_first_event(
    redis_prefix: str,
) -> None:
    channel = f"fresh-{secrets.token_hex(4)}"
    assert await _first_event_arrives(RedisBackend(redis_url(redis_prefix)), channel)


async def test_stock_redis_backend_still_loses_the_first_event(redis_prefix: str) -> None:
    # Why sync/backends/redis.py exists: broadcaster 0.3.1 with redis-py 8
    # delivers nothing to the first subscriber. When this fails, broadcaster
    # has been fixed and our backend may be reconsidered.
    channel = f"{redis_prefix}fresh-{secrets.token_hex(4)}"  # the stock backend has no prefix
    received: list[str] = []
    async with broadcaster.Broadcast(REDIS_URL) as stock, stock.subscribe(channel) as subscriber:
        await stock.publish(channel, "first")
        with suppress(TimeoutError):
            received.append(await _next(subscriber, timeout=1.0))
    # The stock class cancels its listener tasks without waiting for them.
    await asyncio.sleep(0)
    assert received == []


@pytest.fixture(params=["redis", "pg"])
async def hub(request: pytest.FixtureRequest) -> AsyncIterator[Hub]:
    url = request.getfixturevalue(f"{request.param}_broker_url")
    async with Hub(url) as connected:
        yield connected


async def test_events_arrive_in_order_on_each_channel(hub: Hub) -> None:
    async with hub.subscribe("a") as a, hub.subscribe("b") as b:
        for i in range(50):
            await hub.publish("a", f"a{i}")
            await hub.publish("b", f"b{i}")
        assert [await _next(a) for _ in range(50)] == [f"a{i}" for i in range(50)]
        assert [await _next(b) for _ in range(50)] == [f"b{i}" for i in range(50)]


async def test_unsubscribed_channels_are_not_delivered(hub: Hub) -> None:
    async with hub.subscribe("kept") as kept:
        async with hub.subscribe("dropped"):
            pass
        await hub.publish("dropped", "nobody")
        await hub.publish("kept", "somebody")
        assert await _next(kept) == "somebody"


async def test_redis_prefix_isolates_deployments(redis_prefix: str) -> None:
    async with (
        Hub(redis_url(redis_prefix + "one:")) as one,
        Hub(redis_url(redis_prefix + "two:")) as two,
        one.subscribe("same") as heard_by_one,
    ):
        await two.publish("same", "for two")
        await one.publish("same", "for one")
        assert await _next(heard_by_one) == "for one"


async def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return loop.time() - start


async def _resubscribe_and_receive(hub: Hub, timeout: float) -> float:
    """Seconds until a new subscription receives a new event again."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        try:
            async with hub.subscribe("again") as subscriber:
                await hub.publish("again", "back")
                assert await _next(subscriber, timeout=1.0) == "back"
                return loop.time() - start
        except (ChannelDisconnected, TimeoutError):
            if loop.time() - start > timeout:
                raise
            await asyncio.sleep(0.05)


@pytest.fixture
async def redis_user(redis_server: str) -> AsyncIterator[tuple[str, str]]:
    """A Redis ACL user of this test's own, ``(name, password)``; deleted afterwards."""
    name, password = f"ckt{secrets.token_hex(4)}", secrets.token_hex(8)
    admin = aioredis.Redis.from_url(redis_server)
    try:
        await admin.acl_setuser(
            name,
            enabled=True,
            passwords=[f"+{password}"],
            keys="*",
            channels="*",
            commands=["+@all"],
        )
        yield name, password
    finally:
        await admin.acl_deluser(name)
        await admin.aclose()


async def test_lost_redis_connection_shows_in_readyz_and_recovers(
    redis_prefix: str, redis_user: tuple[str, str], tmp_path: Any
) -> None:
    name, password = redis_user
    broker = redis_url(redis_prefix).replace("redis://", f"redis://{name}:{password}@", 1)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        realtime_url="memory://",
        broadcast_url=broker,
        relay_poll_interval=0.05,
    )
    await asyncio.to_thread(upgrade, settings.database_url)
    app = create_app(settings)
    admin = aioredis.Redis.from_url(REDIS_URL)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        hub: Hub = app.state.services.hub
        try:
            assert (await http.get("/readyz")).status_code == 200
            async with hub.subscribe("c") as subscriber:
                # Cut this user's connections and keep it from connecting again.
                await admin.acl_setuser(name, enabled=False)
                await admin.execute_command("CLIENT", "KILL", "USER", name)
                with pytest.raises(ChannelDisconnected):
                    await _next(subscriber)
            response = await http.get("/readyz")
            assert response.status_code == 503
            assert response.json()["checks"]["broker"] is False
        finally:
            await admin.acl_setuser(name, enabled=True)
            await admin.aclose()
        assert await _resubscribe_and_receive(hub, timeout=10.0) < 10.0
        assert (await http.get("/readyz")).status_code == 200


async def test_postgres_backend_carries_up_to_its_limit(pg_broker_url: str) -> None:
    backend = PostgresBackend(pg_broker_url)
    async with Hub(backend=backend) as hub, hub.subscribe("big") as subscriber:
        text = "x" * backend.max_message_bytes
        await hub.publish("big", text)
        assert await _next(subscriber) == text
        # The server's own limit is just above: the reference fallback is needed.
        with pytest.raises(asyncpg.PostgresError, match="too long"):
            await hub.publish("big", "x" * 8_000)


async def _admin(sql: str, *args: Any) -> Any:
    """Run ``sql`` on the server's ``postgres`` database."""
    conn = await asyncpg.connect(postgres_url_for("postgres", "postgresql"))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


@pytest.fixture
async def pg_app(private_postgres_url: str) -> AsyncIterator[FastAPI]:
    settings = Settings(
        database_url=private_postgres_url,
        realtime_url="memory://",
        broadcast_url=private_postgres_url,
        relay_poll_interval=0.05,
    )
    await asyncio.to_thread(upgrade, settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_terminated_listen_connection_shows_in_readyz_and_recovers(
    pg_app: FastAPI, private_postgres_url: str
) -> None:
    hub: Hub = pg_app.state.services.hub
    backend = hub.backend
    assert isinstance(backend, PostgresBackend)
    database = private_postgres_url.rsplit("/", 1)[1]
    transport = httpx.ASGITransport(app=pg_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/readyz")).status_code == 200
        async with hub.subscribe("before") as subscriber:
            # Keep the outage open: nobody may connect until it is allowed again.
            await _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            try:
                await _admin("SELECT pg_terminate_backend($1)", backend.listen_pid)
                with pytest.raises(ChannelDisconnected):
                    await _next(subscriber)
                response = await http.get("/readyz")
                assert response.status_code == 503
                assert response.json()["checks"]["broker"] is False
            finally:
                await _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        resumed = await _resubscribe_and_receive(hub, timeout=10.0)
        assert resumed < 10.0
        assert (await http.get("/readyz")).status_code == 200


async def test_16_kib_activity_travels_by_reference_over_postgres(pg_app: FastAPI) -> None:
    # Too big for one NOTIFY: the event must travel as a reference and be loaded.
    assert pg_app.state.services.channels.max_message_bytes == 7_900
    transport = httpx.ASGITransport(app=pg_app)
    metadata = {"blob": "é" * 8_150}  # 16,311 bytes serialised: just under the 16 KiB limit
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        websocket(pg_app, TRANSPORT_WS) as ws,
    ):
        graphql = GraphQLClient(http)
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe(
            "a",
            ACTIVITY_ADDED.replace("timestamp }", "timestamp metadata }"),
            {"u": "u1"},
        )
        await _wait_for(lambda: pg_app.state.services.hub.channels >= 1, 5.0, "subscribe")
        added = await graphql.data(
            "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq } }",
            {"input": {"userId": "u1", "type": "note", "metadata": metadata}},
        )
        received = (await proto.next_data("a"))["activityAdded"]
        assert received["seq"] == added["addActivity"]["seq"]
        assert received["metadata"] == metadata


async def test_publishing_while_not_connected_is_a_connection_error() -> None:
    # Between a lost connection and the reconnect the relay keeps publishing; it
    # must get a connection error to log and retry, not an assertion.
    with pytest.raises(RedisConnectionError, match="not connected"):
        await RedisBackend("redis://127.0.0.1:1/0").publish("c", "m")
    with pytest.raises(ConnectionError, match="not connected"):
        await PostgresBackend("postgres://u@127.0.0.1:1/db").publish("c", "m")
    with pytest.raises(ConnectionError, match="not connected"):
        await MemoryBackend().publish("c", "m")


async def test_the_listen_connection_is_named_in_pg_stat_activity(pg_broker_url: str) -> None:
    backend = PostgresBackend(pg_broker_url)
    async with Hub(backend=backend):
        name = await _admin(
            "SELECT application_name FROM pg_stat_activity WHERE pid = $1", backend.listen_pid
        )
    assert name == LISTEN_APPLICATION_NAME
