"""Multiplexed subscriptions: principals of different authorization scopes are not grouped."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest
from fastapi import FastAPI

from gql.multiplex import EVENT_RESULTS
from gql.settings import Settings

from .conftest import GraphQLClient, secure, token, websocket
from .helpers import TRANSPORT_WS, Protocol
from .helpers.protocol import wait_subscribed

ADD = 'mutation($u: String!) { addActivity(input: {userId: $u, type: "note"}) { seq } }'
ACTIVITY_ADDED = "subscription($u: String!) { activityAdded(userId: $u) { seq userId } }"


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return secure(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
            realtime_url="memory://",
            broadcast_url="memory://",
            relay_poll_interval=0.05,
            escalation_policy="",  # type: ignore[arg-type]
        )
    )


async def test_members_of_different_scopes_are_not_grouped(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    credentials = {
        "alice": token("alice"),
        "alice-again": token("alice"),
        "admin": token("ops", role="admin"),
    }
    async with AsyncExitStack() as stack:
        members: list[tuple[Protocol, str]] = []
        for op_id, credential in credentials.items():
            ws = await stack.enter_async_context(websocket(app, TRANSPORT_WS))
            proto = Protocol(ws, TRANSPORT_WS)
            await proto.init({"authorization": f"Bearer {credential}"})
            await proto.subscribe(op_id, ACTIVITY_ADDED, {"u": "alice"})
            members.append((proto, op_id))
        await wait_subscribed(app, 1)
        await asyncio.sleep(0.1)
        executions, reuses = EVENT_RESULTS.executions, EVENT_RESULTS.reuses
        added = await graphql.as_(token("backend", role="service")).data(ADD, {"u": "alice"})
        seq = added["addActivity"]["seq"]
        for proto, op_id in members:
            got = (await proto.next_data(op_id))["activityAdded"]
            assert got == {"seq": seq, "userId": "alice"}
    # alice's two sockets share one result; the admin's is executed on its own.
    assert EVENT_RESULTS.executions - executions == 2
    assert EVENT_RESULTS.reuses - reuses == 1
