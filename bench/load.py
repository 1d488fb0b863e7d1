"""The soak's clients: idle subscriptions, live subscribers that check every event, a writer.

All run in one asyncio process and stay cheap: a socket costs a task and a
reader, an event one ``json.loads``, a write one pooled HTTP request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

__all__ = ["IdleSockets", "LiveSubscriber", "Writer", "open_socket"]

LIVE_USER = "soak-live"
ADD = (
    "mutation($m: JSON) { addActivity(input: "
    f'{{userId: "{LIVE_USER}", type: "note", description: "soak", metadata: $m}}) {{ seq }} }}'
)
LIVE = (
    f'subscription {{ activityAdded(userId: "{LIVE_USER}", after: 0) '
    "{ seq type description timestamp metadata } }"
)
IDLE = "subscription($u: String!) { activityAdded(userId: $u) { seq } }"
# Writes in flight at once; beyond it the server is not keeping up and writes are
# skipped (and counted): piling more concurrent transactions onto SQLite's write
# lock would only slow it further.
MAX_IN_FLIGHT = 32
# Sockets spread over this many loopback addresses (127.0.0.2, ...), so that a
# cap on connections per client address does not refuse the idle crowd.
SOURCE_ADDRESSES = 200
# Faults kept per client for the report; the counts say how many there were.
KEPT_FAULTS = 5


async def open_socket(url: str, *, index: int = 0) -> ClientConnection:
    """A graphql-transport-ws socket past ``connection_ack``, from loopback address ``index``.

    Raises:
        RuntimeError: the server answered ``connection_init`` with something else.
    """
    host = f"127.0.0.{2 + index % SOURCE_ADDRESSES}"
    ws = await connect(
        url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        # The server pings (and the client answers); client pings would only add load.
        ping_interval=None,
        open_timeout=60,
        local_addr=(host, 0),
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    reply = json.loads(await ws.recv())
    if reply.get("type") != "connection_ack":
        await ws.close()
        raise RuntimeError(f"connection_init answered with {reply}")
    return ws


async def _subscribe(ws: ClientConnection, op_id: str, query: str, **variables: Any) -> None:
    payload = {"query": query, "variables": variables}
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))


@dataclass
class IdleSockets:
    """Sockets holding subscriptions to users nobody writes to; nothing should arrive."""

    sockets: list[ClientConnection] = field(default_factory=list)
    unexpected: int = 0
    closed: int = 0
    faults: list[str] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self, url: str, *, subscriptions: int, per_socket: int) -> None:
        """Open ``subscriptions`` idle subscriptions, ``per_socket`` on each socket."""
        gate = asyncio.Semaphore(32)  # handshakes at once: the server has other work

        async def one(index: int, count: int) -> None:
            async with gate:
                ws = await open_socket(url, index=index)
                for n in range(count):
                    await _subscribe(ws, str(n), IDLE, u=f"soak-idle-{index}-{n}")
            self.sockets.append(ws)
            self._readers.append(asyncio.create_task(self._read(ws)))

        counts = [per_socket] * (subscriptions // per_socket)
        if subscriptions % per_socket:
            counts.append(subscriptions % per_socket)
        await asyncio.gather(*(one(i, n) for i, n in enumerate(counts)))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self.unexpected += 1
                if len(self.faults) < KEPT_FAULTS:
                    self.faults.append(f"idle socket got {str(raw)[:200]}")
        except ConnectionClosed:
            pass
        self.closed += 1

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


@dataclass
class LiveSubscriber:
    """One socket subscribed to the written user; checks that seqs arrive as 1, 2, 3, ..."""

    ws: ClientConnection
    last_seq: int = 0
    received: int = 0
    faults: list[str] = field(default_factory=list)
    fault_count: int = 0
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, url: str, *, index: int) -> LiveSubscriber:
        ws = await open_socket(url, index=index)
        await _subscribe(ws, "live", LIVE)
        subscriber = cls(ws)
        subscriber._reader = asyncio.create_task(subscriber._read())
        return subscriber

    def _fault(self, text: str) -> None:
        self.fault_count += 1
        if len(self.faults) < KEPT_FAULTS:
            self.faults.append(text)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") != "next" or message["payload"].get("errors"):
                    self._fault(f"got {str(raw)[:300]}")
                    continue
                seq = message["payload"]["data"]["activityAdded"]["seq"]
                if seq != self.last_seq + 1:
                    self._fault(f"seq {seq} after {self.last_seq}")
                self.last_seq = max(self.last_seq, seq)
                self.received += 1
        except ConnectionClosed as exc:
            self._fault(f"socket closed: {exc}")

    @property
    def complete(self) -> bool:
        """Every event so far arrived once, in order."""
        return self.fault_count == 0 and self.received == self.last_seq

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.ws.close()


@dataclass
class Writer:
    """An open-loop writer: requests start on schedule whether or not earlier ones returned."""

    url: str
    rate: float
    scheduled: int = 0
    acknowledged: int = 0
    failed: int = 0
    skipped: int = 0
    max_seq: int = 0
    latencies: list[float] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    async def _write(self, http: httpx.AsyncClient, n: int) -> None:
        started = time.perf_counter()
        try:
            response = await http.post(self.url, json={"query": ADD, "variables": {"m": {"n": n}}})
            body = response.json()
            seq = body["data"]["addActivity"]["seq"]
        except Exception as exc:
            self.failed += 1
            if len(self.faults) < KEPT_FAULTS:
                self.faults.append(repr(exc)[:300])
            return
        self.latencies.append(time.perf_counter() - started)
        self.acknowledged += 1
        self.max_seq = max(self.max_seq, seq)

    async def run(self, seconds: float) -> None:
        """Write at ``rate`` per second for ``seconds``, then wait for the writes in flight."""
        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes
        # them, or a request sent as the server closes one fails with a ReadError.
        limits = httpx.Limits(
            max_connections=MAX_IN_FLIGHT, max_keepalive_connections=32, keepalive_expiry=2
        )
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            in_flight: set[asyncio.Task[None]] = set()
            loop = asyncio.get_running_loop()
            start = loop.time()
            total = int(seconds * self.rate)
            for n in range(total):
                delay = start + n / self.rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.scheduled += 1
                if len(in_flight) >= MAX_IN_FLIGHT:
                    self.skipped += 1
                    continue
                task = asyncio.create_task(self._write(http, n))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            with contextlib.suppress(Exception):
                await asyncio.gather(*in_flight)
