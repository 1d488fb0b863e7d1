"""Apollo Client (subscriptions over graphql-ws, operations over HTTP) against the real server."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
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


async def test_apollo_client_sees_its_check_in(node: str, server: Server, tmp_path: Path) -> None:
    user = "apollo-user"
    async with asyncio.timeout(TEST_TIMEOUT):
        seeded = (await server.execute(SEED, {"input": {"userId": user, "alertLevel": "ALERT"}}))[
            "updateUserStatus"
        ]
        async with run_node(
            node,
            "apollo.mjs",
            server.graphql_url,
            server.ws_url,
            user,
            str(SCRIPT_TIMEOUT),
            log_dir=tmp_path,
        ) as client:
            steps: dict[str, Any] = {}
            while (message := await client.message(SCRIPT_TIMEOUT)) is not None:
                assert message["op"] not in steps, client.describe()
                steps[message["op"]] = message["data"]
            code = await client.wait(5.0)
    assert code == 0, client.describe()
    assert sorted(steps) == [
        "cache",
        "cacheFromSubscription",
        "externalChange",
        "mutation",
        "query",
        "snapshot",
        "userStatusChanged",
        "watched",
    ]

    # Apollo asks for __typename everywhere; the server must answer it.
    assert steps["snapshot"] == {"__typename": "UserStatus", **seeded}

    mutation = steps["mutation"]
    assert mutation["__typename"] == "CheckInResult"
    activity = mutation["activity"]
    assert activity["__typename"] == "Activity"
    assert activity["type"] == "check_in"
    assert activity["userId"] == user
    assert activity["seq"] == 2  # after the seeded status, with nothing in between

    status = mutation["status"]
    assert status["alertLevel"] == "NONE"
    assert status["alertTriggeredAt"] is None
    assert status["version"] == seeded["version"] + 1
    assert status["lastCheckIn"] == activity["timestamp"]
    assert datetime.fromisoformat(status["nextDue"]) - datetime.fromisoformat(
        status["lastCheckIn"]
    ) == timedelta(hours=1)

    # The subscription, a fresh query and the normalised cache all agree.
    assert steps["userStatusChanged"] == status
    assert steps["query"] == status
    assert steps["cache"] == status

    # A change made without Apollo reaches its normalised cache through the
    # subscription alone, and a query watching the cache sees it.
    external = steps["externalChange"]
    assert external == {
        **status,
        "alertLevel": "WARNING",
        "version": status["version"] + 1,
        "updatedAt": external["updatedAt"],
    }
    assert external["updatedAt"] >= status["updatedAt"]
    assert steps["cacheFromSubscription"] == {"__typename": "UserStatus", **external}
    assert steps["watched"] == {"__typename": "UserStatus", **external}
