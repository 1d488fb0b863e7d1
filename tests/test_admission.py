"""Caps per principal, per client address and per instance (gql/admission.py), over both
WebSocket subprotocols, and ``/readyz`` while the instance is full."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gql import Settings
from gql.admission import Admission
from gql.auth import Principal, Role

from .conftest import API_KEY, GraphQLClient, secure, token
from .helpers import ACTIVITY_ADDED, LEGACY_WS, TRANSPORT_WS, Protocol
from .servers import start_server

ADD = 'mutation($u: String!) { addActivity(input: {userId: $u, type: "note"}) { seq } }'
ALICE = Principal("alice", Role.USER)
BOB = Principal("bob", Role.USER)
ALICE_TOKEN = token("alice")
BOB_TOKEN = token("bob")
SERVICE_TOKEN = token("backend", role="service")


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def caps() -> dict[str, Any]:
    """Small caps for the tests; a test overrides some with ``@pytest.mark.parametrize``."""
    return {
        "max_subscriptions_per_user": 3,
        "max_sockets_per_user": 2,
        "max_pending_sockets_per_address": 2,
        "max_connections": 10,
    }


@pytest.fixture
def settings(tmp_path: Path, caps: dict[str, Any]) -> Settings:
    # The counts are the same whatever the backends, so one combination will do.
    base = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db", relay_poll_interval=0.05
    )
    return secure(base, **caps)


@pytest.fixture
def admission(app: FastAPI) -> Admission:
    value: Admission = app.state.services.admission
    return value


@asynccontextmanager
async def socket(
    app: FastAPI, protocol: str, address: str = "127.0.0.1"
) -> AsyncIterator[AsyncWebSocketSession]:
    """A raw WebSocket to /graphql from ``address``, before any message."""
    transport = ASGIWebSocketTransport(app, client=(address, 50_000))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        aconnect_ws("http://test/graphql", http, subprotocols=[protocol]) as ws,
    ):
        yield ws


async def signed_in(
    stack: AsyncExitStack, app: FastAPI, protocol: str, credential: str
) -> Protocol:
    """A socket past ``connection_init`` with ``credential``, closed with ``stack``."""
    proto = Protocol(await stack.enter_async_context(socket(app, protocol)), protocol)
    await proto.init({"authorization": f"Bearer {credential}"})
    return proto


async def closed(proto: Protocol) -> tuple[int, str]:
    """Read until the server closes the socket: its close code and reason."""
    with pytest.raises(WebSocketDisconnect) as disconnect:  # noqa: PT012
        while True:
            await proto.receive()
    return disconnect.value.code, disconnect.value.reason or ""


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a server-side count that the test's messages change asynchronously."""
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never true: {what}")


def limit_error(message: dict[str, Any], op_id: str) -> dict[str, Any]:
    assert (message["type"], message["id"]) == ("error", op_id), message
    payload = message["payload"]
    error: dict[str, Any] = payload[0] if isinstance(payload, list) else payload
    assert error["extensions"]["code"] == "SUBSCRIPTION_LIMIT", error
    return error


async def data_ids(proto: Protocol, count: int) -> set[str]:
    """The operation ids of the next ``count`` results, which must carry data."""
    ids = set()
    for _ in range(count):
        message = await proto.receive()
        assert message["type"] in ("next", "data") and "errors" not in message["payload"], message
        ids.add(message["id"])
    return ids


# Operations per principal


async def test_the_operation_over_a_users_cap_is_refused_and_the_others_run(
    app: FastAPI, admission: Admission, graphql: GraphQLClient, protocol_name: str
) -> None:
    hub = app.state.services.hub
    async with AsyncExitStack() as stack:
        first = await signed_in(stack, app, protocol_name, ALICE_TOKEN)
        second = await signed_in(stack, app, protocol_name, ALICE_TOKEN)
        bob = await signed_in(stack, app, protocol_name, BOB_TOKEN)
        await first.subscribe("a1", ACTIVITY_ADDED, {"u": "alice"})
        await first.subscribe("a2", ACTIVITY_ADDED, {"u": "alice"})
        await second.subscribe("b1", ACTIVITY_ADDED, {"u": "alice"})
        # The cap counts the principal over both of its sockets.
        await second.subscribe("b2", ACTIVITY_ADDED, {"u": "alice"})
        error = limit_error(await second.receive(), "b2")
        assert "MAX_SUBSCRIPTIONS_PER_USER=3" in error["message"]
        assert admission.operations(ALICE) == 3
        # Another principal is not affected.
        await bob.subscribe("x", ACTIVITY_ADDED, {"u": "bob"})
        await until(lambda: hub.subscribers == 4, "four subscribers")

        await graphql.as_(SERVICE_TOKEN).data(ADD, {"u": "alice"})
        assert await data_ids(first, 2) == {"a1", "a2"}
        assert await data_ids(second, 1) == {"b1"}

        # Stopping one makes room at once, on either socket.
        await second.stop("b1")
        await second.subscribe("b3", ACTIVITY_ADDED, {"u": "alice"})
        await until(lambda: hub.subscribers == 4, "b3 subscribed")
        await graphql.as_(SERVICE_TOKEN).data(ADD, {"u": "alice"})
        message = await second.receive()
        if protocol_name == LEGACY_WS:  # which answers a stop with complete
            assert (message["type"], message["id"]) == ("complete", "b1"), message
            message = await second.receive()
        assert (message["type"], message["id"]) in {("next", "b3"), ("data", "b3")}, message
    await until(lambda: admission.operations(ALICE) == 0, "alice's operations released")
    assert admission.operations(BOB) == 0
    assert (admission.connections, admission.sockets(ALICE)) == (0, 0)


@pytest.mark.parametrize(
    "caps", [{"max_ws_operations": 2, "max_subscriptions_per_user": 100}], ids=["per-socket"]
)
async def test_the_per_socket_limit_answers_with_a_code_naming_its_setting(
    app: FastAPI, protocol_name: str
) -> None:
    async with AsyncExitStack() as stack:
        proto = await signed_in(stack, app, protocol_name, ALICE_TOKEN)
        await proto.subscribe("s1", ACTIVITY_ADDED, {"u": "alice"})
        await proto.subscribe("s2", ACTIVITY_ADDED, {"u": "alice"})
        await proto.subscribe("s3", ACTIVITY_ADDED, {"u": "alice"})
        error = limit_error(await proto.receive(), "s3")
        assert "MAX_WS_OPERATIONS=2" in error["message"]


QUERY = "{ __typename }"


async def test_every_way_an_operation_ends_releases_it(
    app: FastAPI, admission: Admission, protocol_name: str
) -> None:
    async with AsyncExitStack() as stack:
        proto = await signed_in(stack, app, protocol_name, ALICE_TOKEN)
        # Ends by itself: a query (refused over legacy graphql-ws).
        await proto.subscribe("q", QUERY, {})
        while (await proto.receive())["type"] not in ("complete", "error"):
            pass
        # Refused by a permission rule.
        await proto.subscribe("theirs", ACTIVITY_ADDED, {"u": "bob"})
        assert (await proto.receive())["type"] == "error"
        await until(lambda: admission.operations(ALICE) == 0, "ended operations released")
        # Stopped by the client, then a new one at once, three times over the cap.
        for i in range(6):
            await proto.subscribe(f"s{i}", ACTIVITY_ADDED, {"u": "alice"})
            await proto.stop(f"s{i}")
        await until(lambda: admission.operations(ALICE) == 0, "stopped operations released")
        # Running when the socket goes.
        for i in range(3):
            await proto.subscribe(f"live{i}", ACTIVITY_ADDED, {"u": "alice"})
        await until(lambda: admission.operations(ALICE) == 3, "three running")
    await until(lambda: admission.operations(ALICE) == 0, "closing released them")
    assert (admission.connections, admission.sockets(ALICE), admission.pending("127.0.0.1")) == (
        0,
        0,
        0,
    )


async def test_a_token_expiring_releases_its_operations_and_socket(
    app: FastAPI, admission: Admission, protocol_name: str
) -> None:
    async with socket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init({"authorization": f"Bearer {token('alice', expires_in=1)}"})
        await proto.subscribe("s", ACTIVITY_ADDED, {"u": "alice"})
        await until(lambda: admission.operations(ALICE) == 1, "subscribed")
        assert (await closed(proto))[0] == 4403
        await until(lambda: admission.operations(ALICE) == 0, "expiry released it")
    await until(lambda: admission.sockets(ALICE) == 0, "socket released")


# Sockets per principal


async def test_a_principal_over_its_socket_cap_is_closed_1008(
    app: FastAPI, admission: Admission, protocol_name: str
) -> None:
    async with AsyncExitStack() as stack:
        await signed_in(stack, app, protocol_name, ALICE_TOKEN)
        # Others are not affected; services have their own, higher cap.
        await signed_in(stack, app, protocol_name, BOB_TOKEN)
        for _ in range(3):
            await signed_in(stack, app, protocol_name, API_KEY)
        async with AsyncExitStack() as leaving:
            await signed_in(leaving, app, protocol_name, ALICE_TOKEN)
            code, reason = await refused_init(app, protocol_name, ALICE_TOKEN)
            assert code == 1008
            assert "MAX_SOCKETS_PER_USER=2" in reason
            assert admission.sockets(ALICE) == 2
        # A closed socket makes room.
        await until(lambda: admission.sockets(ALICE) == 1, "the second socket released")
        await signed_in(stack, app, protocol_name, ALICE_TOKEN)
    assert (admission.connections, admission.sockets(ALICE)) == (0, 0)


async def refused_init(app: FastAPI, protocol: str, credential: str) -> tuple[int, str]:
    """Open a socket whose ``connection_init`` is refused: the close code and reason."""
    async with socket(app, protocol) as ws:
        proto = Protocol(ws, protocol)
        await ws.send_json(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {credential}"}}
        )
        if protocol == LEGACY_WS:
            refusal = await proto.receive()
            assert refusal["type"] == "connection_error", refusal
            assert "MAX_SOCKETS_PER_USER" in refusal["payload"]["message"]
        return await closed(proto)


# Sockets per address before authentication


async def test_an_address_over_its_pending_cap_is_closed_1013(
    app: FastAPI, admission: Admission, protocol_name: str
) -> None:
    async with AsyncExitStack() as stack:
        waiting = [
            Protocol(
                await stack.enter_async_context(socket(app, protocol_name, "10.0.0.1")),
                protocol_name,
            )
            for _ in range(2)
        ]
        await until(lambda: admission.pending("10.0.0.1") == 2, "two pending")
        async with socket(app, protocol_name, "10.0.0.1") as ws:
            code, reason = await closed(Protocol(ws, protocol_name))
        assert code == 1013
        assert "MAX_PENDING_SOCKETS_PER_ADDRESS=2" in reason
        # Another address is not affected.
        other = Protocol(
            await stack.enter_async_context(socket(app, protocol_name, "10.0.0.2")), protocol_name
        )
        await other.init({"authorization": f"Bearer {BOB_TOKEN}"})
        # A socket past connection_init no longer counts for its address.
        await waiting[0].init({"authorization": f"Bearer {ALICE_TOKEN}"})
        assert admission.pending("10.0.0.1") == 1
        late = Protocol(
            await stack.enter_async_context(socket(app, protocol_name, "10.0.0.1")), protocol_name
        )
        await late.init({"authorization": f"Bearer {ALICE_TOKEN}"})
    assert (admission.connections, admission.pending("10.0.0.1")) == (0, 0)


# Connections per instance


@pytest.mark.parametrize("caps", [{"max_connections": 2}], ids=["two"])
async def test_a_full_instance_refuses_sockets_1013_and_is_not_ready(
    app: FastAPI, admission: Admission, client: httpx.AsyncClient, protocol_name: str
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["capacity"] is True
    keys = set(ready.json()["checks"])
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(socket(app, protocol_name))
        async with AsyncExitStack() as leaving:
            await signed_in(leaving, app, protocol_name, ALICE_TOKEN)
            await until(lambda: admission.connections == 2, "two connections")
            full = await client.get("/readyz")
            assert full.status_code == 503, full.text
            body = full.json()
            assert body["ready"] is False
            assert body["checks"] == {**{key: True for key in keys}, "capacity": False}
            async with socket(app, protocol_name) as ws:
                code, reason = await closed(Protocol(ws, protocol_name))
            assert code == 1013
            assert "MAX_CONNECTIONS=2" in reason
        # One leaves: ready again, and a new socket fits.
        await until(lambda: admission.connections == 1, "one connection")
        assert (await client.get("/readyz")).status_code == 200
        await signed_in(stack, app, protocol_name, BOB_TOKEN)
    assert admission.connections == 0


async def test_on_a_real_server_a_full_instance_closes_1013(tmp_path: Path) -> None:
    server = await asyncio.to_thread(
        start_server, tmp_path, settings={"MAX_CONNECTIONS": "1"}, name="full"
    )
    try:
        async with connect(server.ws_url, subprotocols=[TRANSPORT_WS]) as held:  # type: ignore[list-item]
            await held.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await held.recv())["type"] == "connection_ack"
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{server.base_url}/readyz")).status_code == 503
            async with connect(server.ws_url, subprotocols=[TRANSPORT_WS]) as refused:  # type: ignore[list-item]
                with pytest.raises(ConnectionClosed) as closed_by:
                    await asyncio.wait_for(refused.recv(), 5)
            assert closed_by.value.rcvd is not None
            assert closed_by.value.rcvd.code == 1013
            assert "MAX_CONNECTIONS=1" in closed_by.value.rcvd.reason
    finally:
        await asyncio.to_thread(server.stop)
