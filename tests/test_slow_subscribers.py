"""Subscribers that stop reading: status subscriptions skip ahead, activity ones are cut off.

In process, the test transport buffers without limit, so a client that does
not read never slows the server. ``StalledSends`` restores what a real socket
does when the client stops reading: the server's sends block, its subscription
stops pulling events, and its inbox fills.
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
from .helpers import TRANSPORT_WS, Protocol, wait_subscribed

QUEUE = 3
# Far more than the inbox holds while the socket is stalled.
CHANGES = 4 * QUEUE

UPDATE = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { seq } }"
ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq } }"
STATUS_CHANGED = "subscription($u: String!) { userStatusChanged(userId: $u) { seq alertLevel } }"
ACTIVITY_ADDED = "subscription($u: String!) { activityAdded(userId: $u) { seq } }"
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
async def _websocket(app: StalledSends) -> AsyncIterator[AsyncWebSocketSession]:
    async with (
        httpx.AsyncClient(transport=ASGIWebSocketTransport(app), base_url="http://test") as http,
        aconnect_ws("http://test/graphql", http, subprotocols=[TRANSPORT_WS]) as ws,
    ):
        yield ws


@pytest.fixture
async def small_queue_app(settings: Settings) -> AsyncIterator[FastAPI]:
    settings = settings.model_copy(update={"subscriber_queue": QUEUE})
    await asyncio.to_thread(upgrade, settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def _until(condition: Any, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def _write_while_stalled(graphql: GraphQLClient) -> tuple[int, int]:
    """``CHANGES`` status changes, then ``CHANGES`` activities; the last seq of each."""
    status_seq = activity_seq = 0
    for i in range(CHANGES):
        variables = {"input": {"userId": "u1", "alertLevel": LEVELS[i % 2]}}
        status_seq = (await graphql.data(UPDATE, variables))["updateUserStatus"]["seq"]
    for _ in range(CHANGES):
        variables = {"input": {"userId": "u1", "type": "note"}}
        activity_seq = (await graphql.data(ADD, variables))["addActivity"]["seq"]
    return status_seq, activity_seq


async def test_lagging_status_subscriber_skips_ahead_and_activity_subscriber_overflows(
    small_queue_app: FastAPI,
) -> None:
    app = small_queue_app
    stalled = StalledSends(app)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        _websocket(stalled) as ws,
    ):
        graphql = GraphQLClient(http)
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("s", STATUS_CHANGED, {"u": "u1"})
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1"})
        await wait_subscribed(app, 2)
        hub = app.state.services.hub
        stalled.flowing.clear()
        try:
            newest_status, newest_activity = await _write_while_stalled(graphql)
            # Statuses were published first, so once the activity inbox has
            # overflowed every status has reached its inbox too.
            await _until(lambda: hub.overflows >= 1, "the activity subscriber to overflow")
        finally:
            stalled.flowing.set()

        statuses: list[int] = []
        activities: list[int] = []
        activity_errors: list[dict[str, Any]] = []
        activity_completed = False
        while not activity_completed or statuses[-1:] != [newest_status]:
            message = await proto.receive()
            if message["type"] == "complete":
                assert message["id"] == "a", message
                activity_completed = True
                continue
            assert message["type"] == "next", message
            errors = message["payload"].get("errors", [])
            if message["id"] == "s":
                assert not errors, errors
                statuses.append(message["payload"]["data"]["userStatusChanged"]["seq"])
            elif errors:
                activity_errors = errors
            else:
                activities.append(message["payload"]["data"]["activityAdded"]["seq"])

        # The status subscriber skipped to the newest status instead of being cut off...
        assert statuses == sorted(statuses) and len(statuses) < CHANGES
        # ...while the activity subscriber, which must not skip, was cut off,
        # told where to resume.
        assert len(activities) < CHANGES and newest_activity not in activities
        assert len(activity_errors) == 1
        assert activity_errors[0]["extensions"] == {
            "code": "SUBSCRIBER_OVERFLOW",
            "after": activities[-1] if activities else None,
        }
        assert hub.overflows == 1
        # The status subscription is still live.
        update = {"input": {"userId": "u1", "alertLevel": "EMERGENCY"}}
        changed = (await graphql.data(UPDATE, update))["updateUserStatus"]["seq"]
        got = (await proto.next_data("s"))["userStatusChanged"]
        assert got == {"seq": changed, "alertLevel": "EMERGENCY"}
