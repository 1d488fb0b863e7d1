"""A JavaScript graphql-ws client sees a check-in made over HTTP, against the real server."""

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
INTERVAL = 3600

SEED_STATUS = """
mutation Seed($input: UpdateUserStatusInput!) {
  updateUserStatus(input: $input) {
    userId lastCheckIn nextDue alertLevel alertTriggeredAt version updatedAt
  }
}
"""

RECORD_CHECK_IN = """
mutation CheckIn($input: RecordCheckInInput!) {
  recordCheckIn(input: $input) {
    activity { id userId seq type description timestamp metadata }
    status { userId lastCheckIn nextDue alertLevel alertTriggeredAt version updatedAt }
  }
}
"""


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), f"not UTC: {value}"
    return parsed


async def test_js_client_receives_check_in(node: str, server: Server, tmp_path: Path) -> None:
    user = "e2e-user-1"
    async with asyncio.timeout(TEST_TIMEOUT):
        # The subscriber proves userStatusChanged is live by its initial snapshot, so
        # the user needs a status first; WARNING shows that the check-in resets it.
        seeded = (
            await server.execute(
                SEED_STATUS,
                {
                    "input": {
                        "userId": user,
                        "alertLevel": "WARNING",
                        "alertTriggeredAt": "2026-01-02T03:04:05Z",
                    }
                },
            )
        )["updateUserStatus"]
        assert seeded["version"] == 1
        assert seeded["alertLevel"] == "WARNING"

        async with run_node(
            node,
            "subscribe.mjs",
            server.ws_url,
            user,
            "3",  # the snapshot, the check_in activity and the new status
            str(SCRIPT_TIMEOUT),
            log_dir=tmp_path,
        ) as client:
            before_ready: list[dict[str, Any]] = []
            while True:
                message = await client.message(SCRIPT_TIMEOUT)
                assert message is not None, f"ended before ready\n{client.describe()}"
                if message.get("ready") is True:
                    break
                before_ready.append(message)

            result = (
                await server.execute(
                    RECORD_CHECK_IN,
                    {"input": {"userId": user, "intervalSeconds": INTERVAL}},
                )
            )["recordCheckIn"]

            after_ready: list[dict[str, Any]] = []
            while (message := await client.message(SCRIPT_TIMEOUT)) is not None:
                after_ready.append(message)
            code = await client.wait(5.0)
            assert code == 0, client.describe()

    # Before ready: exactly the snapshot of the seeded status.
    assert before_ready == [{"op": "userStatusChanged", "data": seeded}], client.describe()

    by_op: dict[str, list[dict[str, Any]]] = {}
    for message in after_ready:
        by_op.setdefault(message["op"], []).append(message["data"])
    assert sorted(by_op) == ["activityAdded", "userStatusChanged"], client.describe()
    assert len(by_op["activityAdded"]) == 1, client.describe()
    assert len(by_op["userStatusChanged"]) == 1, client.describe()
    [activity] = by_op["activityAdded"]
    [status] = by_op["userStatusChanged"]

    expected_activity = result["activity"]
    assert activity["type"] == "check_in"
    assert activity["userId"] == user
    assert activity["seq"] == expected_activity["seq"]
    # The client's own readiness probe(s) came first in the user's sequence.
    assert activity["seq"] >= 3
    assert activity["timestamp"] == expected_activity["timestamp"]
    assert activity == expected_activity

    expected_status = result["status"]
    assert status["userId"] == user
    assert status["alertLevel"] == "NONE"
    assert status["alertTriggeredAt"] is None
    assert status["lastCheckIn"] == activity["timestamp"]
    assert parse_time(status["nextDue"]) - parse_time(status["lastCheckIn"]) == timedelta(
        seconds=INTERVAL
    )
    assert status["version"] == expected_status["version"] == seeded["version"] + 1
    assert status == expected_status


async def test_js_client_times_out_without_status(
    node: str, server: Server, tmp_path: Path
) -> None:
    """The harness itself: with no status to snapshot it never reports ready and exits 2."""
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        run_node(
            node, "subscribe.mjs", server.ws_url, "nobody", "1", "1.5", log_dir=tmp_path
        ) as client,
    ):
        messages = []
        while (message := await client.message(SCRIPT_TIMEOUT)) is not None:
            messages.append(message)
        code = await client.wait(5.0)
    assert messages == []
    assert code == 2, client.describe()
    assert "timed out after 1.5s" in client.stderr()
