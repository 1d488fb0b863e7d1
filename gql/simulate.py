"""``checkin-realtime simulate``: realistic traffic through the public API, with live progress.

The simulator is a client like any other: it speaks GraphQL over HTTP and
graphql-transport-ws to ``--url``, as the service role (``--token``; none is
needed in dev mode). For ``--users`` people it sends about ``--rate`` writes a
second:

* **check-ins on schedules**: each user checks in every ``interval`` seconds
  (``recordCheckIn`` with a little slack on ``intervalSeconds``), so
  check-ins are about 70 % of the writes;
* **missed check-ins**: now and then (``--miss``) a user skips two check-ins,
  so their ``nextDue`` passes and the service's own escalation
  (``ESCALATION_POLICY``) writes ``missed_check_in`` and raises the alert
  level; the user's next check-in resets it;
* **notes**: the other writes, ``addActivity`` with ``type: "note"``.

It follows every user's ``activityAdded`` over its own WebSockets (resuming
with ``after`` when a socket drops) and shows writes sent, errors, events
received, escalations seen and the commit-to-client latency: from an
activity's server ``timestamp`` (set as the write commits) to its arrival
here, on this machine's clock.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import random
import statistics
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["Simulator", "Stats"]

CHECK_IN = """mutation($u: String!, $i: Int!) {
  recordCheckIn(input: {userId: $u, intervalSeconds: $i}) { status { alertLevel } }
}"""
NOTE = """mutation($u: String!, $d: String!) {
  addActivity(input: {userId: $u, type: "note", description: $d}) { seq }
}"""
FOLLOW = """subscription($u: String!, $after: Int) {
  activityAdded(userId: $u, after: $after) { seq type timestamp }
}"""
NOTES = ("Went for a walk", "Had lunch", "Took my pills", "Called my daughter", "Feeling fine")
# Activity types the service writes when a check-in is missed (sync/escalation.py).
ESCALATIONS = frozenset({"missed_check_in", "alert_triggered"})
# Subscriptions per socket: under the default MAX_WS_OPERATIONS (50).
PER_SOCKET = 40
# Writes in flight at once; past it the schedule waits, and the display shows it.
MAX_IN_FLIGHT = 64
CHECK_IN_SHARE = 0.7
LATENCY_WINDOW = 2_000


@dataclass
class Stats:
    """What the simulator has seen so far."""

    started: float = field(default_factory=time.monotonic)
    writes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    missed: int = 0
    reconnects: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def latency(self, quantile: float) -> float | None:
        """A quantile of the recent commit-to-client latencies, in seconds."""
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else None
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[
            round(quantile * 100) - 1
        ]

    def summary(self) -> dict[str, Any]:
        """The counts as a JSON-ready dict (``--json``)."""
        return {
            "seconds": round(self.elapsed, 2),
            "writes": sum(self.writes.values()),
            "writes_by_kind": dict(self.writes),
            "errors": sum(self.errors.values()),
            "errors_by_code": dict(self.errors),
            "events": sum(self.events.values()),
            "events_by_type": dict(self.events),
            "missed_check_ins": self.missed,
            "escalations": sum(n for t, n in self.events.items() if t in ESCALATIONS),
            "reconnects": self.reconnects,
            "latency_p50_ms": _ms(self.latency(0.5)),
            "latency_p95_ms": _ms(self.latency(0.95)),
            "latency_max_ms": _ms(max(self.latencies, default=None)),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class Simulator:
    """Drives traffic at ``url`` until :meth:`run`'s duration is over (or it is cancelled).

    Args:
        url: the GraphQL endpoint, ``http://host:port/graphql``.
        users: how many users (``sim-001`` ...) to simulate.
        rate: writes per second, all users together.
        token: a service (or admin) token; ``None`` in dev mode.
        interval: seconds between one user's check-ins (default: what makes
            check-ins 70 % of ``rate``).
        miss: the share of scheduled check-ins after which a user goes silent
            for two intervals.
        seed: for a repeatable run.
    """

    def __init__(
        self,
        *,
        url: str,
        users: int,
        rate: float,
        token: str | None = None,
        interval: float | None = None,
        miss: float = 0.05,
        seed: int | None = None,
    ) -> None:
        self.url = url
        self.users = [f"sim-{i:03d}" for i in range(1, users + 1)]
        self.rate = rate
        self.interval = interval or users / (rate * CHECK_IN_SHARE)
        self.miss = miss
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.connection_params = {"authorization": f"Bearer {token}"} if token else {}
        self.stats = Stats()
        self._random = random.Random(seed)
        self._last_seq: dict[str, int] = {}
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._posts: set[asyncio.Task[None]] = set()

    async def run(self, duration: float | None = None) -> Stats:
        """Subscribe, then write until ``duration`` seconds have passed (``None``: forever)."""
        async with httpx.AsyncClient(headers=self.headers, timeout=30) as http:
            groups = [self.users[i : i + PER_SOCKET] for i in range(0, len(self.users), PER_SOCKET)]
            followers = [asyncio.create_task(self._follow(group)) for group in groups]
            writers: list[asyncio.Task[None]] = []
            try:
                # The subscriptions first, so that the first writes are seen too.
                await asyncio.sleep(0.5)
                self.stats.started = time.monotonic()
                writers = [
                    asyncio.create_task(self._check_ins(http)),
                    asyncio.create_task(self._notes(http)),
                ]
                await asyncio.wait_for(asyncio.gather(*writers), duration)
            except TimeoutError:
                pass
            finally:
                for task in writers:
                    task.cancel()
                await asyncio.gather(*writers, return_exceptions=True)
                if self._posts:
                    await asyncio.wait(self._posts, timeout=30)
                # Wait for the events of the last writes (bounded).
                await asyncio.sleep(min(1.0, 2 / self.rate + 0.2))
                for task in followers:
                    task.cancel()
                await asyncio.gather(*followers, return_exceptions=True)
        return self.stats

    async def _check_ins(self, http: httpx.AsyncClient) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        schedule = [(now + self._random.uniform(0, self.interval), user) for user in self.users]
        heapq.heapify(schedule)
        slack = max(1, math.ceil(self.interval * 0.5))
        declared = math.ceil(self.interval) + slack
        while True:
            due, user = heapq.heappop(schedule)
            await asyncio.sleep(max(0.0, due - loop.time()))
            if self._random.random() < self.miss:
                # Silent for two intervals: nextDue (one interval and the slack) passes.
                self.stats.missed += 1
                heapq.heappush(schedule, (due + 3 * self.interval, user))
                continue
            await self._send(http, "check_in", CHECK_IN, {"u": user, "i": declared})
            jitter = self._random.uniform(0.9, 1.0)
            heapq.heappush(schedule, (due + self.interval * jitter, user))

    async def _notes(self, http: httpx.AsyncClient) -> None:
        rate = self.rate * (1 - CHECK_IN_SHARE)
        while True:
            await asyncio.sleep(self._random.expovariate(rate))
            user = self._random.choice(self.users)
            await self._send(http, "note", NOTE, {"u": user, "d": self._random.choice(NOTES)})

    async def _send(
        self, http: httpx.AsyncClient, kind: str, query: str, variables: dict[str, Any]
    ) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._post(http, kind, query, variables))
        self._posts.add(task)
        task.add_done_callback(self._posted)

    def _posted(self, task: asyncio.Task[None]) -> None:
        self._posts.discard(task)
        self._slots.release()

    async def _post(
        self, http: httpx.AsyncClient, kind: str, query: str, variables: dict[str, Any]
    ) -> None:
        self.stats.writes[kind] += 1
        try:
            response = await http.post(self.url, json={"query": query, "variables": variables})
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self.stats.errors[type(exc).__name__] += 1
            return
        for error in body.get("errors") or []:
            self.stats.errors[
                str(error.get("extensions", {}).get("code", response.status_code))
            ] += 1

    async def _follow(self, users: list[str]) -> None:
        """Follow ``users``' activities on one socket; on a drop, resume each with ``after``."""
        delay = 0.2
        while True:
            try:
                async with connect(
                    _ws_url(self.url),
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                    open_timeout=10,
                ) as ws:
                    await self._session(ws, users)
                    delay = 0.2
            except (OSError, ConnectionClosed, TimeoutError, RuntimeError):
                pass
            self.stats.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _session(self, ws: ClientConnection, users: list[str]) -> None:
        await ws.send(json.dumps({"type": "connection_init", "payload": self.connection_params}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"connection refused: {ack}")
        for user in users:
            variables = {"u": user, "after": self._last_seq.get(user)}
            await ws.send(
                json.dumps(
                    {
                        "id": user,
                        "type": "subscribe",
                        "payload": {"query": FOLLOW, "variables": variables},
                    }
                )
            )
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message.get("type") == "next":
                self._receive(message["id"], message["payload"])
            elif message.get("type") in ("error", "complete"):
                # Ended by the server (SUBSCRIBER_OVERFLOW and the like): resume them all.
                self.stats.errors[f"subscription {message['type']}"] += 1
                return

    def _receive(self, user: str, payload: dict[str, Any]) -> None:
        errors = payload.get("errors")
        if errors:
            self.stats.errors[str(errors[0].get("extensions", {}).get("code"))] += 1
            return
        activity = payload["data"]["activityAdded"]
        if activity["seq"] <= self._last_seq.get(user, 0):
            return  # replayed around a resume
        self._last_seq[user] = activity["seq"]
        self.stats.events[activity["type"]] += 1
        if activity["type"] not in ESCALATIONS:
            committed = datetime.fromisoformat(activity["timestamp"])
            self.stats.latencies.append((datetime.now(UTC) - committed).total_seconds())


def _ws_url(url: str) -> str:
    return "ws" + url.removeprefix("http") if url.startswith("http") else url


def render(stats: Stats, *, users: int, rate: float) -> Table:
    """The live table: writes, errors, events and latency so far."""
    summary = stats.summary()
    table = Table(
        title=f"checkin-realtime simulate: {users} users, {rate:g} writes/s", show_header=False
    )
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    writes = summary["writes"]
    table.add_row("elapsed", f"{summary['seconds']:.0f} s")
    table.add_row("writes sent", f"{writes} ({writes / max(summary['seconds'], 0.001):.1f}/s)")
    table.add_row("  check-ins / notes", f"{stats.writes['check_in']} / {stats.writes['note']}")
    table.add_row("  check-ins missed", str(stats.missed))
    table.add_row("errors", str(summary["errors"]), style="red" if summary["errors"] else None)
    for code, count in stats.errors.most_common(3):
        table.add_row(f"  {code}", str(count))
    table.add_row("events received", str(summary["events"]))
    table.add_row("  escalations", str(summary["escalations"]))
    table.add_row(
        "commit → client p50 / p95 / max",
        " / ".join(
            "-" if v is None else f"{v:.0f} ms"
            for v in (
                summary["latency_p50_ms"],
                summary["latency_p95_ms"],
                summary["latency_max_ms"],
            )
        ),
    )
    if stats.reconnects:
        table.add_row("reconnects", str(stats.reconnects))
    return table


async def simulate(
    simulator: Simulator, *, duration: float | None, console: Console, live: bool
) -> Stats:
    """Run ``simulator`` and show its progress: a live table on a terminal, else a line each 5 s."""

    def show() -> Table:
        return render(simulator.stats, users=len(simulator.users), rate=simulator.rate)

    run = asyncio.create_task(simulator.run(duration))
    if live:
        with Live(show(), console=console, refresh_per_second=4) as display:
            while not run.done():
                await asyncio.wait({run}, timeout=0.25)
                display.update(show())
    else:
        while not run.done():
            await asyncio.wait({run}, timeout=5.0)
            if not run.done():
                s = simulator.stats.summary()
                console.print(
                    f"{s['seconds']:.0f} s: {s['writes']} writes, {s['errors']} errors, "
                    f"{s['events']} events, p95 {s['latency_p95_ms']} ms"
                )
        console.print(show())
    return await run
