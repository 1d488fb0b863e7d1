"""Resumable subscriptions: replay after a seq, then live, with no gap and no duplicate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from db.models import OutboxEntry
from gql.context import Services
from sync import Hub

from .conftest import GraphQLClient, websocket
from .helpers import TRANSPORT_WS, Protocol

ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq } }"
UPDATE = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { seq } }"
ACTIVITY_ADDED = (
    "subscription($u: String!, $after: Int) { activityAdded(userId: $u, after: $after) { seq } }"
)
STATUS_CHANGED = """subscription($u: String!, $after: Int) {
  userStatusChanged(userId: $u, after: $after) { seq version alertLevel }
}"""


async def _add(graphql: GraphQLClient, user: str = "u1") -> int:
    seq: int = (await graphql.data(ADD, {"input": {"userId": user, "type": "note"}}))[
        "addActivity"
    ]["seq"]
    return seq


async def test_activity_added_replays_after_seq_then_goes_live(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    for _ in range(5):
        await _add(graphql)
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1", "after": 2})
        replayed = [(await proto.next_data("a"))["activityAdded"]["seq"] for _ in range(3)]
        assert replayed == [3, 4, 5]
        live = await _add(graphql)
        assert (await proto.next_data("a"))["activityAdded"]["seq"] == live == 6


async def test_no_gap_and_no_duplicate_at_the_seam(app: FastAPI, graphql: GraphQLClient) -> None:
    for _ in range(30):
        await _add(graphql)
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        # Writes keep landing while the replay runs.
        writers = [asyncio.create_task(_add(graphql)) for _ in range(30)]
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1", "after": 0})
        received = [(await proto.next_data("a"))["activityAdded"]["seq"] for _ in range(60)]
        await asyncio.gather(*writers)
        assert received == list(range(1, 61))
        with pytest.raises(TimeoutError):
            await proto.receive(timeout=0.3)


async def test_status_resume_replays_only_status_changes(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    first = (await graphql.data(UPDATE, {"input": {"userId": "u1", "alertLevel": "WARNING"}}))[
        "updateUserStatus"
    ]["seq"]
    await _add(graphql)
    await graphql.data(UPDATE, {"input": {"userId": "u1", "alertLevel": "ALERT"}})
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("s", STATUS_CHANGED, {"u": "u1", "after": first})
        got = (await proto.next_data("s"))["userStatusChanged"]
        assert got == {"seq": 3, "version": 2, "alertLevel": "ALERT"}


async def test_expired_cursor_is_an_explicit_error(
    app: FastAPI, graphql: GraphQLClient, services: Services
) -> None:
    for _ in range(3):
        await _add(graphql)
    async with services.sessions.begin() as session:
        await session.execute(delete(OutboxEntry).where(OutboxEntry.seq <= 2))
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1", "after": 0})
        message = await proto.receive()
        errors: list[dict[str, Any]] = (
            message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        )
        assert errors[0]["extensions"] == {"code": "CURSOR_EXPIRED", "lastSeq": 3}
        if message["type"] == "next":
            assert await proto.receive() == {"id": "a", "type": "complete"}
        # A cursor still covered by the outbox resumes fine.
        await proto.subscribe("b", ACTIVITY_ADDED, {"u": "u1", "after": 2})
        assert (await proto.next_data("b"))["activityAdded"]["seq"] == 3


async def test_cursor_ahead_of_the_stream_is_expired(app: FastAPI, graphql: GraphQLClient) -> None:
    await _add(graphql)
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1", "after": 99})
        message = await proto.receive()
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "CURSOR_EXPIRED"


async def test_status_subscribers_conflate_instead_of_overflowing() -> None:
    async with Hub("memory://", max_queue=3) as hub:
        async with hub.subscribe("s", conflate=True) as subscriber:
            for i in range(10):
                await hub.publish("s", str(i))
            await asyncio.sleep(0.01)
            assert subscriber.queued == 1
            assert (await subscriber.get()).message == "9"
            assert subscriber.dropped == 9
            # Within the inbox size nothing is dropped.
            for i in range(3):
                await hub.publish("s", f"k{i}")
            await asyncio.sleep(0.01)
            assert [(await subscriber.get()).message for _ in range(3)] == ["k0", "k1", "k2"]


async def test_a_burst_of_status_changes_reaches_a_reading_subscriber(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("s", STATUS_CHANGED, {"u": "u1", "after": 0})
        await graphql.data(UPDATE, {"input": {"userId": "u1", "alertLevel": "WARNING"}})
        assert (await proto.next_data("s"))["userStatusChanged"]["seq"] == 1
        await asyncio.gather(
            *(
                graphql.data(UPDATE, {"input": {"userId": "u1", "alertLevel": "ALERT"}})
                for _ in range(30)
            )
        )
        seqs = [(await proto.next_data("s"))["userStatusChanged"]["seq"] for _ in range(30)]
        assert seqs == list(range(2, 32))
