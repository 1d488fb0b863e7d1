"""Fault test 5: one stalled subscriber among 200 active ones while 8,000 events of 16 KB flow.

The stalled client subscribes to the global feed and never reads its socket.
The server must cut it off with a resumable ``SUBSCRIBER_OVERFLOW`` instead of
buffering without bound, and the 200 others must still receive everything.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from pathlib import Path

import httpx
import pytest

from tests.delivery import DeliveryChecker
from tests.servers import start_server

USERS = 200
EVENTS = 8_000
WRITERS = 32
QUEUE = 200
# Events big enough that the stalled socket's kernel buffers (a few MiB on
# loopback) fill within seconds, well before the server's WebSocket ping
# timeout would drop the silent client anyway; near the 16 KiB metadata cap, so
# that few events suffice for the memory bound below to tell a bounded inbox
# from one that keeps what the stalled client missed.
BLOB_BYTES = 16_000
METADATA = {"blob": "x" * BLOB_BYTES}
# Growth allowed while the events flow. An inbox that kept every event the
# stalled client missed would hold over (EVENTS - QUEUE) x BLOB_BYTES = 119 MiB.
MEMORY_BOUND = 64 * 2**20
ADD = """mutation($u: String!, $m: JSON!) {
  addActivity(input: {userId: $u, type: "note", metadata: $m}) { seq }
}"""
FEED = "subscription { activityFeedAdded { userId seq metadata } }"


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def _frame(payload: dict[str, object]) -> bytes:
    """A masked client text frame (RFC 6455 section 5.2)."""
    data = json.dumps(payload).encode()
    mask = os.urandom(4)
    header = bytearray([0x81])
    if len(data) < 126:
        header.append(0x80 | len(data))
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _stalled_feed_socket(url: str) -> socket.socket:
    """A raw WebSocket that subscribes to the feed and then never reads another byte."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    # A tiny receive window: the server's sends back up after a few messages.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    sock.sendall(_frame({"type": "connection_init", "payload": {}}))
    sock.sendall(_frame({"id": "feed", "type": "subscribe", "payload": {"query": FEED}}))
    return sock


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_stalled_subscriber_is_cut_off_and_others_get_everything(tmp_path: Path) -> None:
    # No realtime store: its per-user window would grow RSS legitimately and
    # hide what this test measures, the memory held for subscribers.
    server = start_server(tmp_path, settings={"SUBSCRIBER_QUEUE": str(QUEUE), "REALTIME_URL": ""})
    users = [f"user-{i}" for i in range(USERS)]
    try:
        async with httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=WRITERS)
        ) as http:

            async def add(user: str) -> None:
                response = await http.post(
                    server.graphql_url,
                    json={"query": ADD, "variables": {"u": user, "m": METADATA}},
                )
                assert response.status_code == 200 and "errors" not in response.json()

            for user in users:
                await add(user)  # each checker's first event proves its subscription live
            checker = DeliveryChecker([server.graphql_url], users)
            await checker.start(timeout=60)
            stalled = _stalled_feed_socket(server.graphql_url)
            baseline = server.rss_bytes()
            peak = baseline
            queue: asyncio.Queue[str] = asyncio.Queue()
            for i in range(EVENTS):
                queue.put_nowait(users[i % USERS])

            async def writer() -> None:
                while not queue.empty():
                    await add(queue.get_nowait())

            started = time.monotonic()
            writers = [asyncio.create_task(writer()) for _ in range(WRITERS)]
            while not all(w.done() for w in writers):
                peak = max(peak, server.rss_bytes())
                await asyncio.sleep(0.5)
            await asyncio.gather(*writers)
            elapsed = time.monotonic() - started
            per_user = 1 + EVENTS // USERS
            await checker.wait_for(dict.fromkeys(users, per_user), timeout=120)
            report = await checker.stop()

            metrics = (await http.get(f"{server.base_url}/metrics")).text
            overflows = _metric(metrics, "checkin_broadcast_overflows_total")
            stalled.close()
    finally:
        server.stop()
    print(
        f"{EVENTS} events in {elapsed:.1f} s; RSS {baseline / 2**20:.1f} MiB -> "
        f"peak {peak / 2**20:.1f} MiB; subscribers cut off: {overflows}"
    )
    assert report.ok, report.summary()
    assert overflows == 1
    # Bounded: an unbounded inbox would hold every event the stalled client missed,
    # which for these numbers is far more than the bound.
    assert (EVENTS - QUEUE) * BLOB_BYTES > 1.5 * MEMORY_BOUND
    assert peak - baseline < MEMORY_BOUND
