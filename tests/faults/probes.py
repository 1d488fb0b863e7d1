"""Observations of a running server during a fault: readiness, subscriptions, fresh reads."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from .workload import Workload

__all__ = ["first_answer", "read_while", "wait_ready"]

RECENT = """query($u: String!) {
  recentActivities(userId: $u, first: 5) { edges { node { seq } } }
}"""
SUBSCRIPTION = """subscription($u: String!, $after: Int) {
  activityAdded(userId: $u, after: $after) { seq }
}"""


async def wait_ready(base_url: str, check: str, expected: bool, *, timeout: float) -> float:
    """Poll ``/readyz`` until ``checks[check]`` is ``expected``; return the seconds it took.

    Raises:
        AssertionError: not within ``timeout`` seconds.
    """
    started = time.monotonic()
    last: Any = None
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() - started < timeout:
            last = (await http.get(f"{base_url}/readyz")).json()
            if last["checks"][check] is expected:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz {check} not {expected} within {timeout} s: {last}")


async def first_answer(
    ws_url: str, user: str, *, after: int | None, timeout: float
) -> tuple[float, dict[str, Any]]:
    """Subscribe to ``activityAdded`` and return (seconds, first ``next``/``error`` message).

    Raises:
        TimeoutError: nothing came within ``timeout`` seconds (the subscription hangs).
    """
    async with connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "connection_ack":
            pass
        started = time.monotonic()
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIPTION, "variables": {"u": user, "after": after}},
                }
            )
        )
        deadline = started + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to a subscription within {timeout} s")
            message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), left))
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] in ("next", "error", "complete"):
                return time.monotonic() - started, message


async def read_while(url: str, load: Workload, seconds: float) -> list[float]:
    """Query each user's newest activities in turn for ``seconds``; return the latencies.

    Every answer must include the user's last write that returned before the
    query was sent (read-your-writes), whatever is failing.
    """
    latencies = []
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as http:
        i = 0
        while time.monotonic() - started < seconds:
            user = load.users[i % len(load.users)]
            i += 1
            last_written = max(load.written[user], default=0)
            sent = time.monotonic()
            response = await http.post(url, json={"query": RECENT, "variables": {"u": user}})
            latencies.append(time.monotonic() - sent)
            body = response.json()
            assert "errors" not in body, body
            newest = body["data"]["recentActivities"]["edges"][0]["node"]["seq"]
            assert newest >= last_written, f"{user}: newest {newest}, written {last_written}"
            await asyncio.sleep(0.05)
    return latencies
