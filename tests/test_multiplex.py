"""Multiplexed subscriptions: each live event executed and serialised once per group."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from graphql import ExecutionResult, GraphQLError
from httpx_ws import AsyncWebSocketSession

from db import OutboxKind
from gql.multiplex import EVENT_RESULTS, shared_frame
from gql.response_size import ResponseEncoder
from gql.settings import Settings
from sync import ChangeEvent, Hub
from sync.hub import FANOUT_SLICE
from sync.streams import decode_shared, is_shared

from .conftest import GraphQLClient, websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol
from .helpers.protocol import wait_subscribed

ADD = (
    'mutation($u: String!) { addActivity(input: {userId: $u, type: "note", '
    'description: "d"}) { seq } }'
)
ACTIVITY_ADDED = "subscription($u: String!) { activityAdded(userId: $u) { seq type } }"
RESUMABLE = (
    "subscription($u: String!, $after: Int) { activityAdded(userId: $u, after: $after) { seq } }"
)
WITH_TYPE = (
    "subscription($u: String!, $t: Boolean!) "
    "{ activityAdded(userId: $u) { seq type @include(if: $t) } }"
)


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    """SQLite with the memory store and broker: the grouping is the same on every backend."""
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        realtime_url="memory://",
        broadcast_url="memory://",
        relay_poll_interval=0.05,
        escalation_policy="",  # type: ignore[arg-type]
    )


class _Counts:
    """The change of :data:`EVENT_RESULTS`'s counters since it was made."""

    def __init__(self) -> None:
        self._start = self._now()

    @staticmethod
    def _now() -> dict[str, int]:
        results = EVENT_RESULTS
        return {
            "executions": results.executions,
            "reuses": results.reuses,
            "encodings": results.encodings,
            "frames": results.frames,
        }

    def __getitem__(self, name: str) -> int:
        return self._now()[name] - self._start[name]


async def _add(graphql: GraphQLClient, user: str = "u1") -> int:
    seq: int = (await graphql.data(ADD, {"u": user}))["addActivity"]["seq"]
    return seq


async def _open(stack: AsyncExitStack, app: FastAPI, name: str = TRANSPORT_WS) -> Protocol:
    ws: AsyncWebSocketSession = await stack.enter_async_context(websocket(app, name))
    proto = Protocol(ws, name)
    await proto.init()
    return proto


@pytest.mark.parametrize("name", [TRANSPORT_WS, LEGACY_WS])
async def test_each_event_is_executed_and_serialised_once_per_group(
    app: FastAPI, graphql: GraphQLClient, name: str
) -> None:
    async with AsyncExitStack() as stack:
        sockets = [await _open(stack, app, name) for _ in range(2)]
        members = [(proto, f"op-{i}-{j}") for i, proto in enumerate(sockets) for j in range(3)]
        for proto, op_id in members:
            await proto.subscribe(op_id, ACTIVITY_ADDED, {"u": "u1"})
        await wait_subscribed(app, 1)
        await asyncio.sleep(0.1)  # every operation is listening
        counts = _Counts()
        seqs = [await _add(graphql) for _ in range(3)]
        data_type = "next" if name == TRANSPORT_WS else "data"
        for proto in sockets:
            got: dict[str, list[Any]] = {}
            for _ in range(3 * len(seqs)):
                message = await proto.receive()
                assert message["type"] == data_type, message
                got.setdefault(message["id"], []).append(message["payload"])
            # Each member's payloads came framed with its own id, in seq order.
            expected = [{"data": {"activityAdded": {"seq": s, "type": "note"}}} for s in seqs]
            assert got == {op_id: expected for p, op_id in members if p is proto}
    assert counts["executions"] == len(seqs)
    assert counts["reuses"] == len(seqs) * (len(members) - 1)
    assert counts["encodings"] == len(seqs)
    assert counts["frames"] == len(seqs) * len(members)


async def test_members_with_different_variables_are_not_grouped(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    async with AsyncExitStack() as stack:
        proto = await _open(stack, app)
        await proto.subscribe("with", WITH_TYPE, {"u": "u1", "t": True})
        await proto.subscribe("without", WITH_TYPE, {"u": "u1", "t": False})
        await proto.subscribe("with-too", WITH_TYPE, {"u": "u1", "t": True})
        await wait_subscribed(app, 1)
        await asyncio.sleep(0.1)
        counts = _Counts()
        seq = await _add(graphql)
        got: dict[str, Any] = {}
        for _ in range(3):
            message = await proto.receive()
            got[message["id"]] = message["payload"]["data"]["activityAdded"]
    assert got == {
        "with": {"seq": seq, "type": "note"},
        "without": {"seq": seq},
        "with-too": {"seq": seq, "type": "note"},
    }
    assert counts["executions"] == 2  # one per group
    assert counts["reuses"] == 1


async def test_a_resuming_member_replays_then_joins_the_group_at_the_seam(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    async with AsyncExitStack() as stack:
        live = await _open(stack, app)
        await live.subscribe("live", RESUMABLE, {"u": "u1"})
        await wait_subscribed(app, 1)
        await asyncio.sleep(0.1)
        first = [await _add(graphql) for _ in range(3)]
        resuming = await _open(stack, app)
        # Writes land while the replay runs.
        writers = [asyncio.create_task(_add(graphql)) for _ in range(10)]
        await resuming.subscribe("resumed", RESUMABLE, {"u": "u1", "after": first[0]})
        await asyncio.gather(*writers)
        got = [(await resuming.next_data("resumed"))["activityAdded"]["seq"] for _ in range(12)]
        seen = [(await live.next_data("live"))["activityAdded"]["seq"] for _ in range(13)]
        # Both are live now: the next events are shared.
        counts = _Counts()
        last = [await _add(graphql) for _ in range(3)]
        got += [(await resuming.next_data("resumed"))["activityAdded"]["seq"] for _ in last]
        seen += [(await live.next_data("live"))["activityAdded"]["seq"] for _ in last]
        with pytest.raises(TimeoutError):
            await resuming.receive(timeout=0.3)
    assert got == list(range(first[0] + 1, last[-1] + 1))  # no gap, no duplicate
    assert seen == list(range(1, last[-1] + 1))
    # The member that resumed with after joined the live member's group.
    assert counts["executions"] == len(last)
    assert counts["reuses"] == len(last)


def _event(seq: int = 1) -> ChangeEvent:
    return ChangeEvent(
        outbox_id=seq,
        user_id="u1",
        seq=seq,
        kind=OutboxKind.ACTIVITY,
        payload=None,
        committed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def _clean_results() -> Iterator[None]:
    EVENT_RESULTS.clear()
    yield
    EVENT_RESULTS.clear()


@pytest.mark.usefixtures("_clean_results")
def test_a_shared_frame_is_the_text_the_encoder_writes_with_the_members_own_id() -> None:
    from gql.multiplex import GroupKey

    group = GroupKey(object(), "{}", None)
    event = _event()
    result = ExecutionResult(data={"activityAdded": {"seq": 1, "description": "caf\u00e9 \u2603"}})
    EVENT_RESULTS.put(group, event, result)
    encoder = ResponseEncoder(4096)
    for op_id in ("a", 'quote"d'):
        message = {"id": op_id, "type": "next", "payload": {"data": result.data}}
        assert shared_frame(message, encoder.max_bytes) == encoder(message)
    legacy = {"type": "data", "id": "a", "payload": {"data": result.data}}
    assert shared_frame(legacy, encoder.max_bytes) == encoder(legacy)
    # Over the cap: sent the usual way, which replaces it with RESPONSE_TOO_LARGE.
    assert shared_frame(legacy, 20) is None
    # A copy of the data is not the shared result.
    copied = {"id": "a", "type": "next", "payload": {"data": dict(result.data)}}
    assert shared_frame(copied, encoder.max_bytes) is None


@pytest.mark.usefixtures("_clean_results")
def test_a_result_with_errors_is_never_shared() -> None:
    from gql.multiplex import GroupKey

    group = GroupKey(object(), "{}", None)
    event = _event()
    EVENT_RESULTS.put(group, event, ExecutionResult(data=None, errors=[GraphQLError("boom")]))
    assert EVENT_RESULTS.get(group, event) is None
    good = ExecutionResult(data={"x": 1})
    EVENT_RESULTS.put(group, event, good)
    assert EVENT_RESULTS.get(group, event) is good
    assert EVENT_RESULTS.get(GroupKey(object(), "{}", None), event) is None
    assert EVENT_RESULTS.get(group, _event(2)) is None


def test_a_broker_message_decodes_to_one_shared_event() -> None:
    text = _event(7).encode()
    first = decode_shared(text)
    assert decode_shared(text) is first
    assert is_shared(first)
    assert not is_shared(ChangeEvent.decode(text))


async def test_a_large_fan_out_yields_to_the_loop_in_slices() -> None:
    subscribers = FANOUT_SLICE * 5
    async with Hub("memory://") as hub, AsyncExitStack() as stack:
        inboxes = [
            await stack.enter_async_context(hub.subscribe("hot")) for _ in range(subscribers)
        ]
        cold = await stack.enter_async_context(hub.subscribe("cold"))
        await hub.publish("hot", "h")
        await hub.publish("cold", "c")
        seen: list[int] = []
        # Each turn of this loop is one pass of the event loop: another user's
        # task gets to run while the hot channel is being filled.
        for _ in range(1000):
            queued = sum(inbox.queued for inbox in inboxes)
            seen.append(queued)
            if queued == subscribers and cold.queued:
                break
            await asyncio.sleep(0)
        assert any(0 < count < subscribers for count in seen), seen
        assert seen[-1] == subscribers
        assert (await cold.get()).message == "c"
        assert [(await inbox.get()).message for inbox in inboxes] == ["h"] * subscribers


@pytest.mark.usefixtures("_clean_results")
async def test_members_wait_for_an_execution_under_way_instead_of_running_their_own() -> None:
    from gql.multiplex import GroupKey

    group = GroupKey(object(), "{}", None)
    event = _event()
    execution: asyncio.Future[ExecutionResult] = asyncio.get_running_loop().create_future()
    EVENT_RESULTS.start(group, event, execution)
    assert EVENT_RESULTS.running(group, event) is execution
    assert EVENT_RESULTS.running(group, _event(2)) is None
    assert EVENT_RESULTS.get(group, event) is None
    result = ExecutionResult(data={"x": 1})
    execution.set_result(result)
    await asyncio.sleep(0)
    assert EVENT_RESULTS.running(group, event) is None
    assert EVENT_RESULTS.get(group, event) is result
    # One that fails is dropped, not kept.
    other = _event(3)
    failing: asyncio.Future[ExecutionResult] = asyncio.get_running_loop().create_future()
    EVENT_RESULTS.start(group, other, failing)
    assert EVENT_RESULTS.running(group, other) is failing
    failing.set_exception(RuntimeError("boom"))
    await asyncio.sleep(0)
    assert EVENT_RESULTS.running(group, other) is None
    assert EVENT_RESULTS.get(group, other) is None
    with pytest.raises(RuntimeError):
        failing.result()
