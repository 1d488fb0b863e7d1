"""The README's dashboard client, on graphql-ws against a real server, reconnecting with `after`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.servers import Server

from .conftest import run_node

USER = "e2e-dashboard"
KEEP = 3
CHANGES = 20
RECONNECT_EVERY = 4
SCRIPT_TIMEOUT = 30.0

ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq } }"
UPDATE = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { seq } }"
NOW = """query($u: String!, $n: Int!) {
  userStatus(userId: $u) { alertLevel version seq }
  recentActivities(userId: $u, first: $n) { edges { node { id seq type } } }
}"""
LEVELS = ("WARNING", "ALERT", "EMERGENCY")


async def _write(server: Server, i: int) -> int:
    if i % 3 == 2:
        level = LEVELS[i % len(LEVELS)]
        data = await server.execute(UPDATE, {"input": {"userId": USER, "alertLevel": level}})
        seq: int = data["updateUserStatus"]["seq"]
    else:
        data = await server.execute(ADD, {"input": {"userId": USER, "type": f"t{i}"}})
        seq = data["addActivity"]["seq"]
    return seq


async def test_the_readme_client_keeps_the_database_view_across_reconnects(
    node: str, server: Server, tmp_path: Path
) -> None:
    seeded = [await _write(server, i) for i in range(4)]
    assert seeded == [1, 2, 3, 4]
    until = len(seeded) + CHANGES
    async with (
        asyncio.timeout(SCRIPT_TIMEOUT + 10),
        run_node(
            node,
            "dashboard.mjs",
            server.ws_url,
            USER,
            str(KEEP),
            str(until),
            str(RECONNECT_EVERY),
            str(SCRIPT_TIMEOUT),
            log_dir=tmp_path,
        ) as client,
    ):
        first = await client.message(SCRIPT_TIMEOUT)
        assert first == {"seq": 4, "reset": True, "session": 1}, client.describe()
        # Writes land while the client drops its socket and resumes.
        for i in range(len(seeded), until):
            assert await _write(server, i) == i + 1
            await asyncio.sleep(0.02)
        messages: list[dict[str, Any]] = [first]
        while (message := await client.message(SCRIPT_TIMEOUT)) is not None:
            messages.append(message)
        assert await client.wait(5.0) == 0, client.describe()

    view = messages.pop()["view"]
    # Every change once, in order, across several sockets; only the first message is a snapshot.
    assert [m["seq"] for m in messages] == list(range(4, until + 1)), client.describe()
    assert [m["reset"] for m in messages] == [True] + [False] * CHANGES
    assert messages[-1]["session"] >= CHANGES // RECONNECT_EVERY
    now = await server.execute(NOW, {"u": USER, "n": KEEP})
    assert view == {
        "seq": until,
        "status": now["userStatus"],
        "activities": [edge["node"] for edge in now["recentActivities"]["edges"]],
    }
