"""Who may see what (gql/permissions.py), over HTTP and both WebSocket subprotocols."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import strawberry
from fastapi import FastAPI

from gql import Settings
from gql.permissions import OWN_USER, Authorize, check_every_root_field_guarded

from .conftest import API_KEY, GraphQLClient, secure, token, websocket
from .helpers import (
    ACTIVITY_ADDED,
    FEED,
    LEGACY_WS,
    STATUS_CHANGED,
    TRANSPORT_WS,
    Protocol,
    closed_with,
    wait_subscribed,
)

STATUS = "query($u: String!) { userStatus(userId: $u) { userId version } }"
RECENT = "query($u: String!) { recentActivities(userId: $u) { edges { node { seq } } } }"
FEED_QUERY = "{ activityFeed { edges { node { userId } } } }"
CHECK_IN = """mutation($u: String!) {
  recordCheckIn(input: {userId: $u, intervalSeconds: 60}) { status { userId version } }
}"""
ADD = 'mutation($u: String!) { addActivity(input: {userId: $u, type: "note"}) { seq } }'
UPDATE = """mutation($u: String!) {
  updateUserStatus(input: {userId: $u, alertLevel: ALERT}) { version }
}"""

USER = token("alice")
OTHER_USER = token("bob")
SERVICE = token("backend", role="service")
ADMIN = token("ops", role="admin")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return secure(settings)


def _code(body: dict[str, Any]) -> str:
    errors = body.get("errors")
    assert errors, body
    code: str = errors[0]["extensions"]["code"]
    return code


async def test_a_user_reads_and_writes_only_their_own_data(graphql: GraphQLClient) -> None:
    alice = graphql.as_(USER)
    assert (await alice.data(CHECK_IN, {"u": "alice"}))["recordCheckIn"]["status"]["version"] == 1
    assert (await alice.data(STATUS, {"u": "alice"}))["userStatus"]["userId"] == "alice"
    assert (await alice.data(RECENT, {"u": "alice"}))["recentActivities"]["edges"]
    await graphql.as_(OTHER_USER).data(CHECK_IN, {"u": "bob"})
    for query in (STATUS, RECENT):
        body = await alice(query, {"u": "bob"})
        assert _code(body) == "FORBIDDEN"
        assert not any((body["data"] or {}).values()), body


async def test_record_check_in_for_someone_else_is_refused_and_writes_nothing(
    graphql: GraphQLClient,
) -> None:
    body = await graphql.as_(USER)(CHECK_IN, {"u": "bob"})
    assert _code(body) == "FORBIDDEN"
    assert (await graphql.as_(ADMIN).data(STATUS, {"u": "bob"}))["userStatus"] is None


@pytest.mark.parametrize("mutation", [UPDATE, ADD])
async def test_a_user_cannot_call_service_mutations(graphql: GraphQLClient, mutation: str) -> None:
    body = await graphql.as_(USER)(mutation, {"u": "alice"})
    assert _code(body) == "FORBIDDEN"
    assert (await graphql.as_(ADMIN).data(STATUS, {"u": "alice"}))["userStatus"] is None


@pytest.mark.parametrize("credential", [SERVICE, API_KEY, ADMIN])
async def test_service_and_admin_write_for_any_user(
    graphql: GraphQLClient, credential: str
) -> None:
    writer = graphql.as_(credential)
    assert (await writer.data(UPDATE, {"u": "alice"}))["updateUserStatus"]["version"] == 1
    assert (await writer.data(ADD, {"u": "alice"}))["addActivity"]["seq"] == 2
    assert (await writer.data(CHECK_IN, {"u": "alice"}))["recordCheckIn"]["status"]["version"] == 2
    assert (await writer.data(STATUS, {"u": "alice"}))["userStatus"]["version"] == 2


@pytest.mark.parametrize(
    ("credential", "allowed"), [(USER, False), (SERVICE, False), (ADMIN, True)]
)
async def test_the_feed_is_for_admins(
    graphql: GraphQLClient, credential: str, allowed: bool
) -> None:
    body = await graphql.as_(credential)(FEED_QUERY)
    if allowed:
        assert "errors" not in body
    else:
        assert _code(body) == "FORBIDDEN"


async def test_no_credentials_is_unauthenticated(graphql: GraphQLClient) -> None:
    for query, variables in ((STATUS, {"u": "alice"}), (FEED_QUERY, {}), (CHECK_IN, {"u": "a"})):
        assert _code(await graphql(query, variables)) == "UNAUTHENTICATED"
    # Introspection needs no credentials outside production.
    assert (await graphql.data("{ __typename }"))["__typename"] == "Query"


@pytest.mark.parametrize(
    "bad",
    [
        token("alice", secret="forged-secret-forged-secret-forged-secret-forged"),
        token("alice", expires_in=-10),
        token("alice", aud="another-service"),
        "e30.eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhZG1pbiJ9.",  # alg none, no signature
        "not-a-jwt",
    ],
    ids=["forged", "expired", "wrong-aud", "alg-none", "garbage"],
)
async def test_bad_token_over_http_is_401(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.post(
        "/graphql",
        json={"query": STATUS, "variables": {"u": "alice"}},
        headers={"Authorization": f"Bearer {bad}"},
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_an_unguarded_root_field_fails_the_schema_build() -> None:
    @strawberry.type
    class Leaky:
        @strawberry.field
        def secret(self) -> str:
            return "x"

        @strawberry.field(extensions=[Authorize(OWN_USER)])
        def guarded(self, user_id: str) -> str:
            return user_id

    with pytest.raises(TypeError, match=r"Leaky\.secret"):
        check_every_root_field_guarded([Leaky])


# WebSocket


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _auth(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"authorization": None},
        _auth(token("alice", secret="forged-secret-forged-secret-forged-secret-forged")),
        _auth(token("alice", expires_in=-10)),
        _auth(token("alice", aud="another-service")),
        _auth("e30.eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhZG1pbiJ9."),
        {"authorization": 42},
    ],
    ids=["missing", "null", "forged", "expired", "wrong-aud", "alg-none", "not-a-string"],
)
async def test_bad_or_missing_token_at_connection_init_closes_4403(
    app: FastAPI, protocol_name: str, payload: dict[str, Any]
) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await ws.send_json({"type": "connection_init", "payload": payload})
        if protocol_name == LEGACY_WS:
            assert (await proto.receive())["type"] == "connection_error"
        assert await closed_with(proto) == 4403


async def _operation_error(proto: Protocol, op_id: str) -> dict[str, Any]:
    message = await proto.receive()
    assert message["type"] == "error", message
    assert message["id"] == op_id
    payload = message["payload"]
    error: dict[str, Any] = payload[0] if isinstance(payload, list) else payload
    return error


async def test_subscribing_to_another_user_is_an_error_and_the_socket_stays_open(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str
) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init(_auth(USER))
        await proto.subscribe("theirs", ACTIVITY_ADDED, {"u": "bob"})
        error = await _operation_error(proto, "theirs")
        assert error["extensions"]["code"] == "FORBIDDEN"
        await proto.subscribe("status", STATUS_CHANGED, {"u": "bob"})
        assert (await _operation_error(proto, "status"))["extensions"]["code"] == "FORBIDDEN"
        await proto.subscribe("feed", FEED, {})
        assert (await _operation_error(proto, "feed"))["extensions"]["code"] == "FORBIDDEN"
        # Their own subscription on the same socket works.
        await proto.subscribe("mine", ACTIVITY_ADDED, {"u": "alice"})
        await wait_subscribed(app, 1)
        await graphql.as_(SERVICE).data(ADD, {"u": "bob"})
        await graphql.as_(SERVICE).data(ADD, {"u": "alice"})
        got = await proto.next_data("mine")
        assert got["activityAdded"]["userId"] == "alice"


@pytest.mark.parametrize("credential", [ADMIN, API_KEY], ids=["admin", "service-key"])
async def test_admin_and_service_subscribe_to_anyone(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str, credential: str
) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init(_auth(credential))
        await proto.subscribe("s", ACTIVITY_ADDED, {"u": "bob"})
        await wait_subscribed(app, 1)
        seq = (await graphql.as_(SERVICE).data(ADD, {"u": "bob"}))["addActivity"]["seq"]
        got = (await proto.next_data("s"))["activityAdded"]
        assert (got["userId"], got["seq"]) == ("bob", seq)
        await proto.stop("s")


async def test_a_token_expiring_on_an_open_socket_closes_it_4403(
    app: FastAPI, protocol_name: str
) -> None:
    loop = asyncio.get_running_loop()
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init(_auth(token("alice", expires_in=2)))
        await proto.subscribe("mine", ACTIVITY_ADDED, {"u": "alice"})
        await wait_subscribed(app, 1)
        started = loop.time()
        assert await closed_with(proto, timeout=5) == 4403
        assert loop.time() - started < 3.5
    await asyncio.sleep(0.05)
    assert app.state.services.hub.channels == 0, "the subscription outlived its socket"


@pytest.mark.parametrize(
    ("credential", "allowed"), [(USER, False), (SERVICE, False), (ADMIN, True)]
)
async def test_the_overview_is_for_admins(
    graphql: GraphQLClient, credential: str, allowed: bool
) -> None:
    body = await graphql.as_(credential)("{ userStatuses { edges { node { userId } } } }")
    if allowed:
        assert "errors" not in body
    else:
        assert _code(body) == "FORBIDDEN"
