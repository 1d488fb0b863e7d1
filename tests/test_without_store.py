"""With REALTIME_URL empty the service works fully: reads hit the database, subscriptions work."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from gql import Settings

from .conftest import GraphQLClient, websocket
from .helpers import TRANSPORT_WS, Protocol

CHECK_IN = """mutation($u: String!) {
  recordCheckIn(input: {userId: $u, intervalSeconds: 60}) { status { version } }
}"""


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        realtime_url="",
        broadcast_url="memory://",
        relay_poll_interval=0.05,
    )


async def test_reads_writes_and_subscriptions_without_a_store(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    assert app.state.services.store is None
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe(
            "a", 'subscription { activityAdded(userId: "u1", after: 0) { seq type } }', {}
        )
        await graphql.data(CHECK_IN, {"u": "u1"})
        assert (await proto.next_data("a"))["activityAdded"] == {"seq": 1, "type": "check_in"}
    page = await graphql.data('{ recentActivities(userId: "u1") { edges { node { seq } } } }')
    assert [e["node"]["seq"] for e in page["recentActivities"]["edges"]] == [1]
    status = await graphql.data('{ userStatus(userId: "u1") { version seq } }')
    assert status["userStatus"] == {"version": 1, "seq": 2}
