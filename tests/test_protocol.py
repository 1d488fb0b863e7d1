"""graphql-transport-ws, clause by clause of graphql-ws's PROTOCOL.md.

Each test names the clause it checks. The behaviour does not depend on the
backends, so these run on SQLite with the in-memory store and broker only.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx_ws import WebSocketDisconnect

from db.migrate import upgrade
from gql import Settings, create_app

from .conftest import GraphQLClient, secure, websocket
from .helpers import STATUS_CHANGED, TRANSPORT_WS, Protocol, closed_with, wait_subscribed

SEED = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { version } }"
QUERY = "query($u: String!) { userStatus(userId: $u) { userId version } }"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        realtime_url="memory://",
        broadcast_url="memory://",
        connection_init_timeout=0.5,
        escalation_policy="",  # type: ignore[arg-type]
    )


async def raw(proto: Protocol, timeout: float = 5.0) -> dict[str, Any]:
    """The next message, pings and pongs included."""
    message: dict[str, Any] = await asyncio.wait_for(proto.ws.receive_json(), timeout)
    return message


async def still_open(proto: Protocol) -> None:
    """Nothing is queued before the answer to a fresh ping, and the socket is open."""
    await proto.ws.send_json({"type": "ping", "payload": {"probe": True}})
    assert await raw(proto) == {"type": "pong", "payload": {"probe": True}}


async def seed(graphql: GraphQLClient, user: str) -> int:
    data = await graphql.data(SEED, {"input": {"userId": user}})
    version: int = data["updateUserStatus"]["version"]
    return version


# ConnectionInit


@pytest.mark.parametrize(
    "init", [{"payload": None}, {}, {"payload": {}}], ids=["null", "absent", "{}"]
)
async def test_connection_init_payload_may_be_null_or_absent(
    app: FastAPI, init: dict[str, Any]
) -> None:
    # `payload?: Record<string, unknown> | null`
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await ws.send_json({"type": "connection_init", **init})
        assert await raw(proto) == {"type": "connection_ack"}
        await still_open(proto)


async def test_connection_init_payload_of_another_type_closes_4400(app: FastAPI) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        await ws.send_json({"type": "connection_init", "payload": "token"})
        assert await closed_with(Protocol(ws, TRANSPORT_WS)) == 4400


@pytest.mark.parametrize("second", [{"payload": None}, {"payload": {}}], ids=["null", "{}"])
async def test_a_second_connection_init_closes_4429(app: FastAPI, second: dict[str, Any]) -> None:
    # "more than one ConnectionInit ... 4429: Too many initialisation requests"
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await ws.send_json({"type": "connection_init", **second})
        with pytest.raises(WebSocketDisconnect) as closed:
            await raw(proto)
        assert (closed.value.code, closed.value.reason) == (
            4429,
            "Too many initialisation requests",
        )


async def test_no_connection_init_in_time_closes_4408(app: FastAPI) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await raw(Protocol(ws, TRANSPORT_WS), timeout=3)
        assert (closed.value.code, closed.value.reason) == (
            4408,
            "Connection initialisation timeout",
        )


async def test_a_refused_connection_init_closes_4403(settings: Settings) -> None:
    # "If the server wishes to reject the connection ... 4403: Forbidden"; a null
    # payload carries no credentials, so it is refused, not malformed.
    secured = secure(settings)
    await asyncio.to_thread(upgrade, secured.database_url)
    application = create_app(secured)
    async with application.router.lifespan_context(application):
        for payload in (None, {"authorization": "Bearer not-a-token"}):
            async with websocket(application, TRANSPORT_WS) as ws:
                await ws.send_json({"type": "connection_init", "payload": payload})
                assert await closed_with(Protocol(ws, TRANSPORT_WS)) == 4403


# Ping and Pong


async def test_ping_is_answered_before_connection_init(app: FastAPI) -> None:
    # "The Ping message can be sent at any time within the established socket."
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await ws.send_json({"type": "ping"})
        assert await raw(proto) == {"type": "pong"}
        await proto.init()


@pytest.mark.parametrize(
    ("ping", "pong"),
    [
        ({"type": "ping"}, {"type": "pong"}),
        ({"type": "ping", "payload": None}, {"type": "pong"}),
        ({"type": "ping", "payload": {"sent": 1}}, {"type": "pong", "payload": {"sent": 1}}),
    ],
    ids=["absent", "null", "object"],
)
async def test_pong_carries_the_ping_payload(
    app: FastAPI, ping: dict[str, Any], pong: dict[str, Any]
) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await ws.send_json(ping)
        assert await raw(proto) == pong


async def test_an_unsolicited_pong_is_ignored(app: FastAPI) -> None:
    # "the Pong message may even be sent unsolicited as an unidirectional heartbeat"
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await ws.send_json({"type": "pong", "payload": {"beat": 1}})
        await proto.init()
        await ws.send_json({"type": "pong"})
        await still_open(proto)


# Subscribe


async def test_subscribe_before_connection_ack_closes_4401(app: FastAPI) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.subscribe("a", STATUS_CHANGED, {"u": "u1"})
        with pytest.raises(WebSocketDisconnect) as closed:
            await raw(proto)
        assert (closed.value.code, closed.value.reason) == (4401, "Unauthorized")


async def test_an_active_id_subscribed_again_closes_4409(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    await seed(graphql, "u1")
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", STATUS_CHANGED, {"u": "u1"})
        await proto.next_data("a")
        await proto.subscribe("a", STATUS_CHANGED, {"u": "u1"})
        with pytest.raises(WebSocketDisconnect) as closed:
            await raw(proto)
        assert (closed.value.code, closed.value.reason) == (4409, "Subscriber for a already exists")


async def test_an_id_is_free_again_once_its_operation_completed(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    # "Once a client completes an operation, it is free to re-use that ID."
    version = await seed(graphql, "u1")
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        for _ in range(2):
            await proto.subscribe("a", STATUS_CHANGED, {"u": "u1"})
            assert (await proto.next_data("a"))["userStatusChanged"]["version"] == version
            await proto.stop("a")
        # A single result operation completes by itself; its id is free too.
        for _ in range(2):
            await proto.subscribe("q", QUERY, {"u": "u1"})
            assert (await proto.next_data("q"))["userStatus"]["version"] == version
            assert await proto.receive() == {"id": "q", "type": "complete"}


async def test_a_single_result_operation_is_one_next_then_complete(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    await seed(graphql, "u1")
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("q", QUERY, {"u": "u1"})
        assert (await proto.next_data("q")) == {"userStatus": {"userId": "u1", "version": 1}}
        assert await proto.receive() == {"id": "q", "type": "complete"}
        await still_open(proto)


# Error


@pytest.mark.parametrize(
    ("document", "operation_name", "code", "message"),
    [
        ("subscription { userStatusChanged(", None, "GRAPHQL_PARSE_FAILED", "Syntax Error"),
        ("{ nope }", None, "GRAPHQL_VALIDATION_FAILED", "Cannot query field 'nope'"),
        ("query A { __typename }", "B", "BAD_REQUEST", 'Unknown operation named "B"'),
    ],
    ids=["syntax", "validation", "unknown-operation-name"],
)
async def test_an_operation_that_cannot_run_is_an_error_message_and_the_socket_stays_open(
    app: FastAPI,
    graphql: GraphQLClient,
    document: str,
    operation_name: str | None,
    code: str,
    message: str,
) -> None:
    # "Error ... can occur before execution starts ... This message terminates
    # the operation and no further messages will be sent." Nothing closes the socket.
    await seed(graphql, "u1")
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("live", STATUS_CHANGED, {"u": "u1"})
        assert (await proto.next_data("live"))["userStatusChanged"]["version"] == 1
        await wait_subscribed(app, 1)
        await ws.send_json(
            {
                "id": "bad",
                "type": "subscribe",
                "payload": {"query": document, "operationName": operation_name},
            }
        )
        error = await raw(proto)
        assert error["type"] == "error" and error["id"] == "bad", error
        assert isinstance(error["payload"], list) and len(error["payload"]) == 1, error
        assert message in error["payload"][0]["message"], error
        assert error["payload"][0]["extensions"]["code"] == code, error
        # No complete after the error, and the other operation still runs.
        await still_open(proto)
        await seed(graphql, "u1")
        assert (await proto.next_data("live"))["userStatusChanged"]["version"] == 2
        # The id of the failed operation is free again.
        await proto.subscribe("bad", "{ __typename }", {})
        assert await proto.next_data("bad") == {"__typename": "Query"}


# Complete


async def test_client_complete_stops_the_events(app: FastAPI, graphql: GraphQLClient) -> None:
    # "No further events, relevant to the original subscription, should be sent through."
    await seed(graphql, "u1")
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", STATUS_CHANGED, {"u": "u1"})
        await proto.next_data("a")
        await wait_subscribed(app, 1)
        await proto.stop("a")
        await still_open(proto)  # the complete has been handled
        await seed(graphql, "u1")
        await still_open(proto)  # and no next came before this pong


@pytest.mark.parametrize("op_id", ["never-used", "q"], ids=["unknown", "already-completed"])
async def test_client_complete_of_an_unknown_or_finished_id_is_ignored(
    app: FastAPI, op_id: str
) -> None:
    # "It is permissable to simply ignore all unknown IDs without closing the connection."
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("q", "{ __typename }", {})
        assert await proto.next_data("q") == {"__typename": "Query"}
        assert await proto.receive() == {"id": "q", "type": "complete"}
        await proto.stop(op_id)
        await still_open(proto)


# Invalid message


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "subscription"},
        {"type": "next", "id": "a", "payload": {"data": {}}},
        {"type": "connection_ack"},
        {"type": "start", "id": "a", "payload": {"query": "{ __typename }"}},
        {"type": "complete"},
        {"type": "ping", "payload": "text"},
    ],
    ids=["unknown", "server-next", "server-ack", "legacy-start", "complete-without-id", "payload"],
)
async def test_a_message_outside_the_protocol_closes_4400(
    app: FastAPI, frame: dict[str, Any]
) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await ws.send_json(frame)
        assert await closed_with(proto) == 4400


async def test_an_unknown_subprotocol_closes_4406(app: FastAPI) -> None:
    async with websocket(app, "graphql-sse") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_json()
        assert closed.value.code == 4406
