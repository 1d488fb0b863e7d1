"""urql, the legacy subscriptions-transport-ws client and Relay against the real server.

Each suite is a node script (``tests/e2e/<suite>.mjs``, see ``suite.mjs``) that
asserts as it goes and prints one JSON line per step; these tests check that
it exited 0 and that the steps it reports agree with the server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, run_node

pytestmark = pytest.mark.e2e

TEST_TIMEOUT = 25.0
SCRIPT_TIMEOUT = 15.0

SEED = """
mutation Seed($input: UpdateUserStatusInput!) {
  updateUserStatus(input: $input) {
    userId lastCheckIn nextDue alertLevel alertTriggeredAt version updatedAt
  }
}
"""
ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { id seq } }"
PAGE = """
query($userId: String!) {
  recentActivities(userId: $userId, first: 100) { edges { cursor node { id type seq } } }
}
"""


async def run_suite(
    node: str, server: Server, script: str, user: str, log_dir: Path
) -> dict[str, Any]:
    """Run the suite; its steps by name, after a clean exit."""
    async with run_node(
        node, script, server.graphql_url, server.ws_url, user, str(SCRIPT_TIMEOUT), log_dir=log_dir
    ) as client:
        steps: dict[str, Any] = {}
        while (message := await client.message(SCRIPT_TIMEOUT + 2)) is not None:
            assert message["op"] not in steps, client.describe()
            steps[message["op"]] = message["data"]
        code = await client.wait(5.0)
    assert code == 0, client.describe()
    return steps


async def test_urql_queries_mutates_and_subscribes(
    node: str, server: Server, tmp_path: Path
) -> None:
    user = "urql-user"
    async with asyncio.timeout(TEST_TIMEOUT):
        seeded = (await server.execute(SEED, {"input": {"userId": user, "alertLevel": "WARNING"}}))[
            "updateUserStatus"
        ]
        steps = await run_suite(node, server, "urql.mjs", user, tmp_path)
    assert list(steps) == ["query", "snapshot", "syntaxError", "mutation", "userStatusChanged"]
    # urql asks for __typename over HTTP (not over the socket); the server answers it.
    assert steps["query"] == {"__typename": "UserStatus", **seeded}
    assert steps["snapshot"] == seeded
    assert steps["syntaxError"]["code"] == "GRAPHQL_PARSE_FAILED"
    status = steps["mutation"]["status"]
    assert status["version"] == seeded["version"] + 1
    assert status["alertLevel"] == "NONE"
    assert steps["userStatusChanged"] == {k: v for k, v in status.items() if k != "__typename"}


async def test_legacy_subscriptions_transport_ws_client(
    node: str, server: Server, tmp_path: Path
) -> None:
    user = "legacy-user"
    async with asyncio.timeout(TEST_TIMEOUT):
        seeded = (await server.execute(SEED, {"input": {"userId": user, "alertLevel": "ALERT"}}))[
            "updateUserStatus"
        ]
        steps = await run_suite(node, server, "legacy.mjs", user, tmp_path)
    assert list(steps) == [
        "protocol",
        "snapshot",
        "syntaxError",
        "mutation",
        "userStatusChanged",
        "stopped",
    ]
    assert steps["protocol"] == "graphql-ws"
    assert steps["snapshot"] == seeded
    assert steps["syntaxError"]["code"] == "GRAPHQL_PARSE_FAILED"
    status = steps["mutation"]["status"]
    assert (status["version"], status["alertLevel"]) == (seeded["version"] + 1, "NONE")
    assert steps["userStatusChanged"] == status


async def test_relay_paginates_recent_activities_with_connection(
    node: str, server: Server, tmp_path: Path
) -> None:
    user = "relay-user"
    async with asyncio.timeout(TEST_TIMEOUT):
        seeded = (await server.execute(SEED, {"input": {"userId": user, "alertLevel": "WARNING"}}))[
            "updateUserStatus"
        ]
        for index in range(5):
            await server.execute(ADD, {"input": {"userId": user, "type": f"note.{index}"}})
        everything = (await server.execute(PAGE, {"userId": user}))["recentActivities"]["edges"]
        steps = await run_suite(node, server, "relay.mjs", user, tmp_path)
    assert list(steps) == ["page1", "page2", "page3", "requests", "subscription"]
    # Relay's merged connection is the server's whole list, in its order, once.
    expected = [{**edge["node"], "__typename": "Activity"} for edge in everything]
    assert [node["type"] for node in expected] == [f"note.{i}" for i in range(4, -1, -1)]
    for page, count in ((1, 2), (2, 4), (3, 5)):
        merged = steps[f"page{page}"]
        assert merged["nodes"] == expected[:count], merged
        assert merged["cursors"] == [edge["cursor"] for edge in everything[:count]]
        assert merged["pageInfo"]["endCursor"] == everything[count - 1]["cursor"]
        assert merged["pageInfo"]["hasNextPage"] is (count < 5)
    # Each page asked for the one after the previous page's endCursor.
    assert steps["requests"] == [
        {"userId": user, "first": 2, "after": None},
        {"userId": user, "first": 2, "after": everything[1]["cursor"]},
        {"userId": user, "first": 2, "after": everything[3]["cursor"]},
    ]
    # The network layer's graphql-ws subscription fills Relay's store.
    assert steps["subscription"] == {
        "userId": user,
        "alertLevel": "WARNING",
        "version": seeded["version"],
    }
