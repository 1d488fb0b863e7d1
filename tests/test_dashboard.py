"""The dashboard subscription: a snapshot at one watermark, then one delta per change."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from graphql import OperationDefinitionNode, parse
from sqlalchemy import delete

from db.models import OutboxEntry
from gql import create_schema
from gql.context import Services
from gql.cost import coerced_variables, operation_cost

from .conftest import GraphQLClient, websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol, wait_subscribed

DASHBOARD = """subscription($u: String!, $after: Int, $n: Int) {
  dashboard(userId: $u, after: $after, activities: $n) {
    seq reset status { alertLevel version seq } activities { seq type }
  }
}"""
ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq } }"
UPDATE = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { seq } }"
CHECK_IN = """mutation($input: RecordCheckInInput!) {
  recordCheckIn(input: $input) { activity { seq } status { seq } }
}"""


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def _add(graphql: GraphQLClient, user: str = "u1", type_: str = "note") -> int:
    data = await graphql.data(ADD, {"input": {"userId": user, "type": type_}})
    seq: int = data["addActivity"]["seq"]
    return seq


async def _update(graphql: GraphQLClient, level: str, user: str = "u1") -> int:
    data = await graphql.data(UPDATE, {"input": {"userId": user, "alertLevel": level}})
    seq: int = data["updateUserStatus"]["seq"]
    return seq


async def _next(proto: Protocol, op_id: str = "d") -> dict[str, Any]:
    update: dict[str, Any] = (await proto.next_data(op_id))["dashboard"]
    return update


async def test_snapshot_then_one_delta_per_change(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str
) -> None:
    for type_ in ("a", "b", "c"):
        await _add(graphql, type_=type_)
    await _update(graphql, "WARNING")  # seq 4
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await proto.subscribe("d", DASHBOARD, {"u": "u1", "n": 2})
        first = await _next(proto)
        assert first == {
            "seq": 4,
            "reset": True,
            "status": {"alertLevel": "WARNING", "version": 1, "seq": 4},
            "activities": [{"seq": 3, "type": "c"}, {"seq": 2, "type": "b"}],
        }
        await wait_subscribed(app, 2)
        await _add(graphql, type_="d")
        checked_in = (
            await graphql.data(CHECK_IN, {"input": {"userId": "u1", "intervalSeconds": 60}})
        )["recordCheckIn"]
        assert (await _next(proto)) == {
            "seq": 5,
            "reset": False,
            "status": None,
            "activities": [{"seq": 5, "type": "d"}],
        }
        # A check-in commits an activity and a status change: two deltas, in seq order.
        deltas = [await _next(proto), await _next(proto)]
        assert [d["seq"] for d in deltas] == [6, 7]
        by_seq = {checked_in["activity"]["seq"]: "activity", checked_in["status"]["seq"]: "status"}
        for delta in deltas:
            assert delta["reset"] is False
            if by_seq[delta["seq"]] == "activity":
                assert delta["status"] is None
                assert delta["activities"] == [{"seq": delta["seq"], "type": "check_in"}]
            else:
                assert delta["activities"] == []
                assert delta["status"] == {"alertLevel": "NONE", "version": 2, "seq": delta["seq"]}
        await proto.stop("d")


async def test_a_user_with_nothing_yet_gets_an_empty_snapshot_at_zero(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("d", DASHBOARD, {"u": "nobody"})
        assert await _next(proto) == {"seq": 0, "reset": True, "status": None, "activities": []}
        await wait_subscribed(app, 2)
        await _update(graphql, "ALERT", user="nobody")
        delta = await _next(proto)
        assert delta["seq"] == 1
        assert delta["status"]["alertLevel"] == "ALERT"


async def test_resume_with_after_replays_then_goes_live(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str
) -> None:
    for _ in range(3):
        await _add(graphql)
    await _update(graphql, "ALERT")  # 4
    await _add(graphql)  # 5
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await proto.subscribe("d", DASHBOARD, {"u": "u1", "after": 2})
        replayed = [await _next(proto) for _ in range(3)]
        assert [(u["seq"], u["reset"]) for u in replayed] == [(3, False), (4, False), (5, False)]
        assert replayed[1]["status"] == {"alertLevel": "ALERT", "version": 1, "seq": 4}
        assert replayed[1]["activities"] == []
        assert replayed[2]["activities"] == [{"seq": 5, "type": "note"}]
        live = await _add(graphql)
        assert (await _next(proto))["seq"] == live == 6
        await proto.stop("d")


async def test_resume_at_the_head_sends_nothing_until_the_next_change(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    head = await _add(graphql)
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("d", DASHBOARD, {"u": "u1", "after": head})
        await wait_subscribed(app, 2)
        with pytest.raises(TimeoutError):
            await proto.receive(timeout=0.3)
        await _update(graphql, "WARNING")
        delta = await _next(proto)
        assert (delta["seq"], delta["reset"]) == (head + 1, False)


async def test_a_cursor_past_retention_gets_a_fresh_snapshot_not_an_error(
    app: FastAPI, graphql: GraphQLClient, services: Services, protocol_name: str
) -> None:
    for _ in range(3):
        await _add(graphql)
    await _update(graphql, "EMERGENCY")  # 4
    async with services.sessions.begin() as session:
        await session.execute(delete(OutboxEntry).where(OutboxEntry.seq <= 2))
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await proto.subscribe("d", DASHBOARD, {"u": "u1", "after": 0, "n": 5})
        assert await _next(proto) == {
            "seq": 4,
            "reset": True,
            "status": {"alertLevel": "EMERGENCY", "version": 1, "seq": 4},
            "activities": [{"seq": s, "type": "note"} for s in (3, 2, 1)],
        }
        await wait_subscribed(app, 2)
        await _add(graphql)
        assert (await _next(proto))["seq"] == 5
        # A cursor the outbox still covers replays instead.
        await proto.subscribe("e", DASHBOARD, {"u": "u1", "after": 3})
        replayed = [await _next(proto, "e") for _ in range(2)]
        assert [(u["seq"], u["reset"]) for u in replayed] == [(4, False), (5, False)]


async def test_a_cursor_ahead_of_the_stream_gets_a_fresh_snapshot(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    await _add(graphql)
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("d", DASHBOARD, {"u": "u1", "after": 99})
        first = await _next(proto)
        assert (first["seq"], first["reset"], len(first["activities"])) == (1, True, 1)


async def _input_error(proto: Protocol, op_id: str) -> dict[str, Any]:
    message = await proto.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    if message["type"] == "next":  # raised in the stream, which then completes
        assert await proto.receive() == {"id": op_id, "type": "complete"}
    error: dict[str, Any] = errors[0]
    return error


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"n": 0}, "activities"),
        ({"n": 101}, "activities"),
        ({"n": -1}, "activities"),
        ({"after": -1}, "after"),
        ({"u": ""}, "userId"),
    ],
    ids=["zero", "over-100", "negative", "negative-after", "empty-user"],
)
async def test_out_of_range_arguments_are_refused_and_the_socket_stays_usable(
    app: FastAPI, graphql: GraphQLClient, variables: dict[str, Any], field: str
) -> None:
    for _ in range(3):
        await _add(graphql)
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("bad", DASHBOARD, {"u": "u1", **variables})
        error = await _input_error(proto, "bad")
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert error["extensions"]["field"] == field, error
        assert app.state.services.hub.channels == 0
        # The bounds themselves are allowed, and null is the default.
        for op_id, n in (("one", 1), ("hundred", 100), ("null", None)):
            await proto.subscribe(op_id, DASHBOARD, {"u": "u1", "n": n})
            got = await _next(proto, op_id)
            assert (got["seq"], len(got["activities"])) == (3, min(n or 20, 3))
            await proto.stop(op_id)


def _cost(document: str, variables: dict[str, Any]) -> int:
    schema = create_schema()._schema
    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    coerced = coerced_variables(schema, operation, variables)
    assert coerced is not None
    return operation_cost(schema, operation, {}, coerced)


@pytest.mark.parametrize(("count", "expected"), [(None, 1 + 20 * 18), (1, 19), (100, 1 + 100 * 18)])
def test_the_cost_counts_each_activity_a_snapshot_may_carry(
    count: int | None, expected: int
) -> None:
    document = """subscription($n: Int) {
      dashboard(userId: "u1", activities: $n) { seq activities { metadata } }
    }"""
    variables = {} if count is None else {"n": count}
    assert _cost(document, variables) == expected
