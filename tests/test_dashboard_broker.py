"""A lost broker ends a dashboard with BROKER_DISCONNECTED and its resume point, like the others.

The broker is PostgreSQL ``LISTEN`` on the test's own database; killing the
listening connection (``pg_terminate_backend``) is what a failover or a
network cut does to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from db.migrate import upgrade
from gql import Settings, create_app
from sync.backends.postgres import LISTEN_APPLICATION_NAME

from .conftest import GraphQLClient, postgres_url_for, websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol, wait_subscribed

DASHBOARD = """subscription($u: String!, $after: Int) {
  dashboard(userId: $u, after: $after) { seq reset activities { seq } }
}"""
ADD = 'mutation($u: String!) { addActivity(input: {userId: $u, type: "note"}) { seq } }'


@pytest.fixture
def settings(private_postgres_url: str) -> Settings:
    return Settings(
        database_url=private_postgres_url,
        realtime_url="memory://",
        broadcast_url=private_postgres_url,
        relay_poll_interval=0.05,
        escalation_policy="",  # type: ignore[arg-type]
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    await asyncio.to_thread(upgrade, settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def _kill_listener(database_url: str) -> int:
    database = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    conn = await asyncpg.connect(postgres_url_for("postgres", "postgresql"), timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()",
            database,
            LISTEN_APPLICATION_NAME,
        )
    finally:
        await conn.close()
    return sum(1 for row in rows if row["done"])


async def _add(graphql: GraphQLClient) -> int:
    seq: int = (await graphql.data(ADD, {"u": "b1"}))["addActivity"]["seq"]
    return seq


async def test_a_lost_broker_ends_the_dashboard_and_after_resumes_it(
    app: FastAPI, graphql: GraphQLClient, settings: Settings, protocol_name: str
) -> None:
    await _add(graphql)
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await proto.subscribe("d", DASHBOARD, {"u": "b1"})
        assert (await proto.next_data("d"))["dashboard"]["seq"] == 1
        await wait_subscribed(app, 2)
        assert await _add(graphql) == 2
        assert (await proto.next_data("d"))["dashboard"]["seq"] == 2

        assert await _kill_listener(settings.database_url) == 1
        message = await proto.receive(timeout=10)
        assert message["type"] in ("next", "data"), message
        errors: list[dict[str, Any]] = message["payload"]["errors"]
        assert errors[0]["extensions"] == {"code": "BROKER_DISCONNECTED", "after": 2}
        assert await proto.receive() == {"id": "d", "type": "complete"}

        # Writes go on while the broker is away; resuming replays them, then goes live.
        assert await _add(graphql) == 3
        hub = app.state.services.hub
        assert await hub.wait_healthy(10)
        await proto.subscribe("e", DASHBOARD, {"u": "b1", "after": 2})
        replayed = (await proto.next_data("e"))["dashboard"]
        assert replayed == {"seq": 3, "reset": False, "activities": [{"seq": 3}]}
        await wait_subscribed(app, 2)
        assert await _add(graphql) == 4
        assert (await proto.next_data("e"))["dashboard"]["seq"] == 4
