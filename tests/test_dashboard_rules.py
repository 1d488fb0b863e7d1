"""The dashboard follows userStatusChanged's rules: own user, or service/admin; and the caps.

Over both WebSocket subprotocols, with authentication on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from gql import Settings

from .conftest import API_KEY, GraphQLClient, secure, token, websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol, closed_with, wait_subscribed

DASHBOARD = """subscription($u: String!) {
  dashboard(userId: $u) { seq reset status { userId } activities { userId seq } }
}"""
ADD = 'mutation($u: String!) { addActivity(input: {userId: $u, type: "note"}) { seq } }'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return secure(settings, max_subscriptions_per_user=2)


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _auth(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


async def _operation_error(proto: Protocol, op_id: str) -> dict[str, Any]:
    message = await proto.receive()
    assert (message["type"], message["id"]) == ("error", op_id), message
    payload = message["payload"]
    error: dict[str, Any] = payload[0] if isinstance(payload, list) else payload
    return error


async def test_a_user_may_open_only_their_own_dashboard(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str
) -> None:
    service = graphql.as_(token("backend", role="service"))
    await service.data(ADD, {"u": "bob"})
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init(_auth(token("alice")))
        await proto.subscribe("theirs", DASHBOARD, {"u": "bob"})
        error = await _operation_error(proto, "theirs")
        assert error["extensions"]["code"] == "FORBIDDEN", error
        # Nothing of bob's was read or subscribed to.
        assert "data" not in error
        assert app.state.services.hub.channels == 0
        await proto.subscribe("mine", DASHBOARD, {"u": "alice"})
        assert (await proto.next_data("mine"))["dashboard"]["seq"] == 0
        await wait_subscribed(app, 2)
        await service.data(ADD, {"u": "bob"})
        await service.data(ADD, {"u": "alice"})
        delta = (await proto.next_data("mine"))["dashboard"]
        assert delta["activities"] == [{"userId": "alice", "seq": 1}]


@pytest.mark.parametrize("role", ["admin", "service", "api-key"])
async def test_admin_and_service_open_anyones_dashboard(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str, role: str
) -> None:
    await graphql.as_(API_KEY).data(ADD, {"u": "bob"})
    credential = API_KEY if role == "api-key" else token("ops", role=role)
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init(_auth(credential))
        await proto.subscribe("d", DASHBOARD, {"u": "bob"})
        got = (await proto.next_data("d"))["dashboard"]
        assert (got["seq"], got["activities"]) == (1, [{"userId": "bob", "seq": 1}])


async def test_without_credentials_the_socket_is_refused(app: FastAPI, protocol_name: str) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await ws.send_json({"type": "connection_init", "payload": {}})
        if protocol_name == LEGACY_WS:
            assert (await proto.receive())["type"] == "connection_error"
        assert await closed_with(proto) == 4403


async def test_dashboards_count_against_the_per_user_cap(app: FastAPI, protocol_name: str) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init(_auth(token("alice")))
        for op_id in ("d1", "d2"):
            await proto.subscribe(op_id, DASHBOARD, {"u": "alice"})
            assert (await proto.next_data(op_id))["dashboard"]["reset"] is True
        await proto.subscribe("d3", DASHBOARD, {"u": "alice"})
        error = await _operation_error(proto, "d3")
        assert error["extensions"]["code"] == "SUBSCRIPTION_LIMIT", error
        # Ending one makes room again.
        await proto.stop("d1")
        if protocol_name == LEGACY_WS:  # the legacy protocol acknowledges a stop
            assert await proto.receive() == {"id": "d1", "type": "complete"}
        await asyncio.sleep(0.1)
        await proto.subscribe("d4", DASHBOARD, {"u": "alice"})
        assert (await proto.next_data("d4"))["dashboard"]["reset"] is True


async def test_a_token_expiring_under_an_open_dashboard_closes_the_socket(
    app: FastAPI, protocol_name: str
) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init(_auth(token("alice", expires_in=2)))
        await proto.subscribe("d", DASHBOARD, {"u": "alice"})
        assert (await proto.next_data("d"))["dashboard"]["reset"] is True
        assert await closed_with(proto, timeout=5) == 4403
    await asyncio.sleep(0.05)
    assert app.state.services.hub.channels == 0, "the dashboard outlived its socket"
