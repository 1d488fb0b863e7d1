"""A dashboard that falls SUBSCRIBER_QUEUE changes behind gets one fresh snapshot, not the backlog.

In process, the test transport buffers without limit, so a client that does
not read never slows the server; :class:`StalledSends` makes the server's
sends block while it is stalled, as a real socket's do when the client stops
reading, so the subscription's inboxes fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx_ws import AsyncWebSocketSession, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport
from starlette.types import Message, Receive, Scope, Send

from db.migrate import upgrade
from gql import Settings, create_app

from .conftest import GraphQLClient
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol, wait_subscribed

QUEUE = 3
# Far more than the inboxes hold while the socket is stalled.
CHANGES = 6 * QUEUE

DASHBOARD = """subscription($u: String!) {
  dashboard(userId: $u, activities: 5) { seq reset status { alertLevel seq } activities { seq } }
}"""
UPDATE = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { seq } }"
ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq } }"
LEVELS = ("WARNING", "ALERT")


class StalledSends:
    """Wraps an ASGI app; while ``flowing`` is clear, its WebSocket sends block."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def gated(message: Message) -> None:
            if message["type"] == "websocket.send":
                await self.flowing.wait()
            await send(message)

        await self.app(scope, receive, gated if scope["type"] == "websocket" else send)


@asynccontextmanager
async def _websocket(app: StalledSends, protocol: str) -> AsyncIterator[AsyncWebSocketSession]:
    async with (
        httpx.AsyncClient(transport=ASGIWebSocketTransport(app), base_url="http://test") as http,
        aconnect_ws("http://test/graphql", http, subprotocols=[protocol]) as ws,
    ):
        yield ws


@pytest.fixture
async def small_queue_app(settings: Settings) -> AsyncIterator[FastAPI]:
    settings = settings.model_copy(update={"subscriber_queue": QUEUE})
    await asyncio.to_thread(upgrade, settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def _write(graphql: GraphQLClient, i: int) -> int:
    """An activity on even ``i``, a status change on odd; its seq."""
    if i % 2:
        variables = {"input": {"userId": "u1", "alertLevel": LEVELS[i // 2 % 2]}}
        seq: int = (await graphql.data(UPDATE, variables))["updateUserStatus"]["seq"]
    else:
        variables = {"input": {"userId": "u1", "type": "note"}}
        seq = (await graphql.data(ADD, variables))["addActivity"]["seq"]
    return seq


async def test_a_lagging_dashboard_gets_one_reset_snapshot_and_stays_live(
    small_queue_app: FastAPI, protocol_name: str
) -> None:
    app = small_queue_app
    stalled = StalledSends(app)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
        _websocket(stalled, protocol_name) as ws,
    ):
        graphql = GraphQLClient(http)
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await proto.subscribe("d", DASHBOARD, {"u": "u1"})
        assert (await proto.next_data("d"))["dashboard"]["seq"] == 0
        await wait_subscribed(app, 2)
        hub = app.state.services.hub
        stalled.flowing.clear()
        try:
            newest = 0
            for i in range(CHANGES):
                newest = await _write(graphql, i)
            # Every change has been published (each write waits for its relay)
            # and pushed into the inboxes, which conflated.
            await asyncio.sleep(0.1)
            assert hub.queued <= 2 * (QUEUE + 1)
        finally:
            stalled.flowing.set()

        updates: list[dict[str, Any]] = []
        while not updates or updates[-1]["seq"] != newest:
            updates.append((await proto.next_data("d"))["dashboard"])
        # A few deltas made it before the inboxes filled, then one snapshot
        # replaced the backlog.
        resets = [u for u in updates if u["reset"]]
        assert len(resets) == 1, updates
        assert updates[-1] is resets[0]
        assert len(updates) < CHANGES
        deltas = updates[:-1]
        assert [u["seq"] for u in deltas] == list(range(1, len(deltas) + 1))
        assert resets[0] == {
            "seq": newest,
            "reset": True,
            "status": {"alertLevel": LEVELS[(CHANGES - 1) // 2 % 2], "seq": newest},
            "activities": [{"seq": s} for s in range(newest - 1, 0, -2)][:5],
        }
        # Not cut off: nothing else came, and the next change arrives as a delta.
        assert hub.overflows == 0
        with pytest.raises(TimeoutError):
            await proto.receive(timeout=0.2)
        seq = await _write(graphql, 0)
        assert (await proto.next_data("d"))["dashboard"] == {
            "seq": seq,
            "reset": False,
            "status": None,
            "activities": [{"seq": seq}],
        }
