"""The legacy graphql-ws subprotocol, as subscriptions-transport-ws documents and serves it.

Its PROTOCOL.md and server: ``connection_init`` with an optional payload,
``start``/``stop`` by id, ``error`` for an operation that fails before it runs
(the socket stays open), ``error`` "Invalid message type!" for a message of an
unknown type, and a ``start`` with a running id replaces that operation. Where
that server has no rule (a second ``connection_init``, a ``start`` before the
ack), the codes of graphql-transport-ws apply.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx_ws import WebSocketDisconnect

from gql import Settings

from .conftest import GraphQLClient, websocket
from .helpers import ACTIVITY_ADDED, LEGACY_WS, STATUS_CHANGED, Protocol, wait_subscribed

SEED = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { version } }"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        realtime_url="memory://",
        broadcast_url="memory://",
        escalation_policy="",  # type: ignore[arg-type]
    )


async def raw(proto: Protocol, timeout: float = 5.0) -> dict[str, Any]:
    """The next message but keep-alives."""
    while True:
        message: dict[str, Any] = await asyncio.wait_for(proto.ws.receive_json(), timeout)
        if message["type"] != "ka":
            return message


async def seed(graphql: GraphQLClient, user: str) -> None:
    await graphql.data(SEED, {"input": {"userId": user}})


async def live(app: FastAPI, graphql: GraphQLClient, proto: Protocol, user: str) -> None:
    """Subscribe ``live`` to ``user``'s status and read its snapshot."""
    await seed(graphql, user)
    await proto.subscribe("live", STATUS_CHANGED, {"u": user})
    assert (await proto.next_data("live"))["userStatusChanged"]["userId"] == user
    await wait_subscribed(app, 1)


async def still_live(graphql: GraphQLClient, proto: Protocol, user: str) -> None:
    """The ``live`` operation gets the next change, and nothing came before it."""
    await seed(graphql, user)
    message = await raw(proto)
    assert message["type"] == "data" and message["id"] == "live", message


@pytest.mark.parametrize(
    "init", [{"payload": None}, {}, {"payload": {}}], ids=["null", "absent", "{}"]
)
async def test_connection_init_payload_is_optional(
    app: FastAPI, graphql: GraphQLClient, init: dict[str, Any]
) -> None:
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await ws.send_json({"type": "connection_init", **init})
        assert await raw(proto) == {"type": "connection_ack"}
        await live(app, graphql, proto, "u1")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("subscription { userStatusChanged(", "Syntax Error"),
        ("subscription { nope }", "Cannot query field 'nope'"),
    ],
    ids=["syntax", "validation"],
)
async def test_an_operation_that_cannot_run_is_an_error_for_its_id(
    app: FastAPI, graphql: GraphQLClient, document: str, message: str
) -> None:
    # GQL_ERROR: "a failing operation, before the GraphQL execution"; the socket stays.
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await proto.init()
        await live(app, graphql, proto, "u1")
        await ws.send_json({"id": "bad", "type": "start", "payload": {"query": document}})
        error = await raw(proto)
        assert error["type"] == "error" and error["id"] == "bad", error
        assert message in error["payload"]["message"], error
        await still_live(graphql, proto, "u1")


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "subscribe", "id": "x", "payload": {"query": "{ __typename }"}},
        {"type": "ping"},
        {"type": "complete", "id": "x"},
    ],
    ids=["subscribe", "ping", "complete"],
)
async def test_an_unknown_message_type_is_an_error_and_the_socket_stays_open(
    app: FastAPI, graphql: GraphQLClient, frame: dict[str, Any]
) -> None:
    # subscriptions-transport-ws: sendError(opId, { message: 'Invalid message type!' })
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await proto.init()
        await live(app, graphql, proto, "u1")
        await ws.send_json(frame)
        expected: dict[str, Any] = {
            "type": "error",
            "payload": {"message": "Invalid message type!"},
        }
        if "id" in frame:
            expected["id"] = frame["id"]
        assert await raw(proto) == expected
        await still_live(graphql, proto, "u1")


async def test_an_unknown_message_type_before_connection_init_is_an_error_too(
    app: FastAPI,
) -> None:
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await ws.send_json({"type": "ping"})
        assert await raw(proto) == {
            "type": "error",
            "payload": {"message": "Invalid message type!"},
        }
        await proto.init()


async def test_start_with_a_running_id_replaces_that_operation(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    # subscriptions-transport-ws: "if we already have a subscription with this id,
    # unsubscribe from it first". No complete for the id: the client would end the
    # new operation on it.
    await seed(graphql, "u2")
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await proto.init()
        await live(app, graphql, proto, "u1")
        await proto.subscribe("live", STATUS_CHANGED, {"u": "u2"})
        assert (await proto.next_data("live"))["userStatusChanged"]["userId"] == "u2"
        await seed(graphql, "u1")  # the replaced operation is gone
        await still_live(graphql, proto, "u2")
        # One operation holds the id, so one stop ends it.
        await proto.stop("live")
        assert await raw(proto) == {"type": "complete", "id": "live"}


async def test_stop_of_an_unknown_id_is_ignored(app: FastAPI, graphql: GraphQLClient) -> None:
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await proto.init()
        await live(app, graphql, proto, "u1")
        await proto.stop("never-used")
        await still_live(graphql, proto, "u1")


async def test_a_second_connection_init_closes_4429(app: FastAPI) -> None:
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await proto.init()
        await ws.send_json({"type": "connection_init", "payload": None})
        with pytest.raises(WebSocketDisconnect) as closed:
            await raw(proto)
        assert closed.value.code == 4429


async def test_start_before_connection_ack_closes_4401(app: FastAPI) -> None:
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1"})
        with pytest.raises(WebSocketDisconnect) as closed:
            await raw(proto)
        assert closed.value.code == 4401


async def test_connection_terminate_closes_normally(app: FastAPI, graphql: GraphQLClient) -> None:
    # GQL_CONNECTION_TERMINATE: "the client ... terminate[s] the connection".
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await proto.init()
        await live(app, graphql, proto, "u1")
        await ws.send_json({"type": "connection_terminate"})
        with pytest.raises(WebSocketDisconnect) as closed:
            await raw(proto)
        assert closed.value.code == 1000
