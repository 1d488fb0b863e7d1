"""A replay holds one small page per subscription, whatever the history, with a real server.

Subscriptions that resume from ``after: 0`` on a socket that is never read
must not load the user's history: each holds at most one replay page
(``sync.streams.REPLAY_PAGE`` entries) and the frame its send is blocked on.
Loading the whole history (up to 500 entries a page) cost about 5 MiB per
subscription here.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.helpers.stalled import StalledSocket
from tests.servers import Server, start_server

ACTIVITIES = 300
METADATA_CHARS = 15_000
SOCKETS = 2
SUBSCRIPTIONS = 20
# Measured: about 0.25 MiB per subscription with 16-entry pages, 5 MiB with
# the whole history loaded; the bound sits well between the two.
MAX_GROWTH = SOCKETS * SUBSCRIPTIONS * 2**20
SAMPLE_SECONDS = 3.0
ADD = """mutation($m: JSON!) {
  addActivity(input: {userId: "u1", type: "note", metadata: $m}) { seq }
}"""
REPLAY = 'subscription { activityAdded(userId: "u1", after: 0) { seq metadata } }'


async def _fill(server: Server) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        gate = asyncio.Semaphore(8)

        async def add(index: int) -> None:
            async with gate:
                metadata = {"blob": "x" * METADATA_CHARS, "index": index}
                response = await http.post(
                    server.graphql_url, json={"query": ADD, "variables": {"m": metadata}}
                )
                assert "errors" not in response.json(), response.text

        await asyncio.gather(*(add(i) for i in range(ACTIVITIES)))


async def _subscribers(server: Server) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{server.base_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("checkin_broadcast_subscribers "):
            return int(float(line.split()[1]))
    raise AssertionError("checkin_broadcast_subscribers not exposed")


async def test_stalled_replays_hold_a_page_each_not_the_history(tmp_path: Path) -> None:
    server = start_server(tmp_path, settings={"WRITE_WAIT": "0"})
    sockets: list[StalledSocket] = []
    try:
        await _fill(server)
        baseline = server.rss_bytes()
        for _ in range(SOCKETS):
            sock = StalledSocket(server.graphql_url)
            sockets.append(sock)
            for index in range(SUBSCRIPTIONS):
                sock.subscribe(str(index), REPLAY)
        for _ in range(500):
            if await _subscribers(server) == SOCKETS * SUBSCRIPTIONS:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"subscriptions not open\n{server.log_tail()}")
        # Every subscription is replaying now (it subscribes, then reads its first
        # page); watch RSS while their sends stay blocked.
        peak = baseline
        deadline = time.monotonic() + SAMPLE_SECONDS
        while time.monotonic() < deadline:
            peak = max(peak, server.rss_bytes())
            await asyncio.sleep(0.1)
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
    growth = peak - baseline
    print(f"RSS {baseline / 2**20:.1f} MiB -> peak {peak / 2**20:.1f} MiB")
    assert growth < MAX_GROWTH, f"replays grew RSS by {growth / 2**20:.1f} MiB"
