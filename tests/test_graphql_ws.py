"""Subscriptions over both WebSocket subprotocols, with mutations sent over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from .conftest import GraphQLClient, websocket
from .helpers import (
    ACTIVITY_ADDED,
    FEED,
    LEGACY_WS,
    STATUS_CHANGED,
    TRANSPORT_WS,
    Protocol,
    wait_subscribed,
)

CHECK_IN = """mutation($input: RecordCheckInInput!) {
  recordCheckIn(input: $input) { activity { id seq } status { version nextDue } }
}"""
ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { id seq } }"


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def test_activity_added_and_status_changed(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str
) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1"})
        await proto.subscribe("s", STATUS_CHANGED, {"u": "u1"})
        await wait_subscribed(app, 1)
        wrote = (await graphql.data(CHECK_IN, {"input": {"userId": "u1", "intervalSeconds": 60}}))[
            "recordCheckIn"
        ]
        received: dict[str, dict[str, Any]] = {}
        for _ in range(2):
            message = await proto.receive()
            received[message["id"]] = message["payload"]["data"]
        assert received["a"]["activityAdded"]["seq"] == wrote["activity"]["seq"]
        assert received["a"]["activityAdded"]["type"] == "check_in"
        assert received["a"]["activityAdded"]["userId"] == "u1"
        assert received["s"]["userStatusChanged"] == {
            "userId": "u1",
            "alertLevel": "NONE",
            "version": wrote["status"]["version"],
        }
        # Another user's changes are not delivered.
        await graphql.data(ADD, {"input": {"userId": "u2", "type": "note"}})
        await graphql.data(ADD, {"input": {"userId": "u1", "type": "note"}})
        assert (await proto.next_data("a"))["activityAdded"]["seq"] == 3
        await proto.stop("a")
        await proto.stop("s")


async def test_status_subscription_starts_with_the_current_snapshot(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str
) -> None:
    await graphql.data(CHECK_IN, {"input": {"userId": "u1", "intervalSeconds": 60}})
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await proto.subscribe("s", STATUS_CHANGED, {"u": "u1"})
        first = await proto.next_data("s")
        assert first["userStatusChanged"]["version"] == 1
        await graphql.data(CHECK_IN, {"input": {"userId": "u1", "intervalSeconds": 60}})
        second = await proto.next_data("s")
        assert second["userStatusChanged"]["version"] == 2


async def test_activity_feed_receives_every_user(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str
) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await proto.subscribe("f", FEED, {})
        await wait_subscribed(app, 1)
        for user in ("a", "b"):
            await graphql.data(ADD, {"input": {"userId": user, "type": "note"}})
        got = [(await proto.next_data("f"))["activityFeedAdded"]["userId"] for _ in range(2)]
        assert got == ["a", "b"]


async def test_bad_subscription_argument_is_an_error_not_a_crash(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    await graphql.data(CHECK_IN, {"input": {"userId": "u9", "intervalSeconds": 60}})
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": ""})
        message = await proto.receive()
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT", message
        if message["type"] == "next":  # raised in the stream, which then completes
            assert await proto.receive() == {"id": "a", "type": "complete"}
        # The socket is still usable: the next subscription gets its first event.
        await proto.subscribe("b", STATUS_CHANGED, {"u": "u9"})
        assert (await proto.next_data("b"))["userStatusChanged"] == {
            "userId": "u9",
            "alertLevel": "NONE",
            "version": 1,
        }
        await proto.stop("b")
