"""SIGTERM drains a real ``checkin-realtime serve`` mid-traffic (gql/shutdown.py).

What is checked: ``/readyz`` turns 503 at once and new connections are
refused; in-flight mutations finish; every acknowledged write is published
before the exit (outbox rows all marked) or, on PostgreSQL, by the next relay;
open WebSockets close with 1001; and every subscriber resumes elsewhere (or
after a restart) with its last ``seq`` and misses nothing.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import postgres_url_for
from tests.delivery import DeliveryChecker
from tests.servers import Server, start_server

pytestmark = pytest.mark.e2e

SHUTDOWN_TIMEOUT = 6.0
USERS = [f"drain-{i}" for i in range(4)]
ADD = """mutation($u: String!, $k: String!) {
  addActivity(input: {userId: $u, type: "note", idempotencyKey: $k}) { seq }
}"""
FEED = "subscription($u: String!) { activityAdded(userId: $u) { seq } }"


def _stalled_request(port: int) -> socket.socket:
    """A POST whose body never completes: an HTTP request in flight until dropped."""
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"qu'
    )
    return stalled


def test_sigterm_exits_within_the_grace_period_despite_a_stalled_request(tmp_path: Path) -> None:
    server = start_server(tmp_path, settings={"SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)})
    stalled = _stalled_request(server.port)
    try:
        time.sleep(0.5)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        stalled.close()
        server.stop()
    assert elapsed < 15, f"shutdown took {elapsed:.1f} s"
    assert elapsed < SHUTDOWN_TIMEOUT + 1, f"shutdown took {elapsed:.1f} s"
    # A drained server exits normally, so `make serve` ends without a make error.
    assert server.process.returncode == 0, server.log_tail()
    # A quiet start: no line per Alembic plugin or migration step.
    assert "alembic" not in server.log_tail(), server.log_tail()


def test_readyz_turns_503_and_new_work_is_refused_while_draining(tmp_path: Path) -> None:
    server = start_server(tmp_path, settings={"SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)})
    # One kept-alive connection, made before the signal (as a load balancer holds one).
    with httpx.Client(base_url=server.base_url, limits=httpx.Limits(max_connections=1)) as http:
        assert http.get("/readyz").status_code == 200
        # In flight until the drain gives up on it: holds the drain open for the checks below.
        stalled = _stalled_request(server.port)
        try:
            time.sleep(0.3)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            ready = _poll_until(lambda: http.get("/readyz").status_code == 503, 2.0)
            readyz_after = time.monotonic() - started
            refused = http.post(
                "/graphql",
                json={"query": ADD, "variables": {"u": "u1", "k": "late"}},
            )
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
            server.process.wait(timeout=SHUTDOWN_TIMEOUT + 5)
            elapsed = time.monotonic() - started
        finally:
            stalled.close()
            server.stop()
    assert ready, server.log_tail()
    assert readyz_after < 1.0, f"/readyz turned 503 after {readyz_after:.2f} s"
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert elapsed < SHUTDOWN_TIMEOUT + 1, f"exit took {elapsed:.1f} s"
    # Nothing was written by the refused mutation.
    with sqlite3.connect(tmp_path / "checkin.db") as db:
        assert db.execute("SELECT count(*) FROM activities").fetchone() == (0,)


def _poll_until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)
    return False


class Writers:
    """Writers that add notes for :data:`USERS` until stopped; records acknowledged seqs.

    A write that fails (refused, connection lost) is sent again with the same
    idempotency key to the next URL, so it is written once whatever happened.
    """

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.acknowledged: dict[str, list[int]] = {user: [] for user in USERS}
        self.failures = 0
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            await asyncio.gather(*(self._write(http, user) for user in USERS))

    def stop(self) -> None:
        self._stopping.set()

    async def _write(self, http: httpx.AsyncClient, user: str) -> None:
        attempt = 0
        while not self._stopping.is_set():
            key = uuid.uuid4().hex
            while True:
                url = self.urls[attempt % len(self.urls)]
                try:
                    response = await http.post(
                        url, json={"query": ADD, "variables": {"u": user, "k": key}}
                    )
                    body = response.json()
                    if response.status_code == 200 and not body.get("errors"):
                        self.acknowledged[user].append(body["data"]["addActivity"]["seq"])
                        break
                except (httpx.TransportError, json.JSONDecodeError):
                    pass
                self.failures += 1
                attempt += 1
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)


async def _subscribe_raw(server: Server, user: str) -> tuple[list[int], asyncio.Task[int | None]]:
    """A graphql-transport-ws subscriber; its task returns the close code it got."""
    seqs: list[int] = []
    ws = await connect(server.ws_url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(
        json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": FEED, "variables": {"u": user}}}
        )
    )

    async def read() -> int | None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "next":
                    seqs.append(message["payload"]["data"]["activityAdded"]["seq"])
        except ConnectionClosed:
            pass
        return ws.close_code

    return seqs, asyncio.create_task(read())


@pytest.mark.timeout(120)
async def test_sigterm_mid_traffic_publishes_every_acknowledged_write_sqlite(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, settings={"SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)})
    checker: DeliveryChecker | None = None
    restarted: Server | None = None
    try:
        for user in USERS:
            await server.execute(ADD, {"u": user, "k": f"first-{user}"})
        raw = [await _subscribe_raw(server, user) for user in USERS]
        checker = DeliveryChecker([server.graphql_url], USERS)
        await checker.start(timeout=30)
        writers = Writers([server.graphql_url])
        writing = asyncio.create_task(writers.run())
        await asyncio.sleep(1.5)  # traffic flows
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        codes = await asyncio.wait_for(asyncio.gather(*(task for _, task in raw)), 15)
        exit_code = await asyncio.to_thread(server.process.wait, 30)
        elapsed = time.monotonic() - started
        writers.stop()
        # The only URL is gone, so writes in flight keep failing: stop them.
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing

        with sqlite3.connect(tmp_path / "checkin.db") as db:
            pending = db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            assert pending.fetchone() == (0,), "committed writes left unpublished at exit"
            last = dict(db.execute("SELECT user_id, max(seq) FROM activities GROUP BY user_id"))

        # Subscribers resume on the restarted instance with their cursor.
        restarted = start_server(tmp_path, name="restarted")
        checker.urls = [restarted.graphql_url]
        await checker.wait_for(last, timeout=30)
        report = await checker.stop()
        checker = None
    finally:
        if checker is not None:
            await checker.stop()
        server.stop()
        if restarted is not None:
            restarted.stop()
    assert exit_code == 0, server.log_tail()
    assert elapsed < SHUTDOWN_TIMEOUT + 1, f"exit took {elapsed:.1f} s"
    assert codes == [1001] * len(USERS), codes
    acknowledged = sum(len(seqs) for seqs in writers.acknowledged.values())
    assert acknowledged > 20, f"too little traffic to prove anything: {acknowledged}"
    for user in USERS:
        # Every acknowledged write is in the database, and every subscriber got every
        # change without a gap or a duplicate across the shutdown.
        assert set(writers.acknowledged[user]) <= set(range(1, last[user] + 1))
    assert report.ok, report.summary()
    assert all(r.reconnects >= 1 for r in report.users), report.summary()
    for (seqs, _), user in zip(raw, USERS, strict=True):
        assert seqs == sorted(set(seqs)) and seqs[-1] <= last[user]


@pytest.mark.timeout(180)
async def test_sigterm_of_the_relay_leader_loses_nothing_on_postgres(
    tmp_path: Path, private_postgres_url: str
) -> None:
    settings = {
        "DATABASE_URL": private_postgres_url,
        "BROADCAST_URL": private_postgres_url,
        "REALTIME_URL": "",
        "GRAPHIQL": "false",
        "SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
        "RELAY_POLL_INTERVAL": "0.2",
    }
    first = start_server(tmp_path, settings=settings, name="first")
    second: Server | None = None
    checker: DeliveryChecker | None = None
    try:
        second = start_server(tmp_path, settings=settings, name="second")
        async with httpx.AsyncClient() as http:
            leader = (await http.get(f"{first.base_url}/readyz")).json()["relay_leader"]
        going, staying = (first, second) if leader else (second, first)
        for user in USERS:
            await going.execute(ADD, {"u": user, "k": f"first-{user}"})
        checker = DeliveryChecker([going.graphql_url, staying.graphql_url], USERS)
        await checker.start(timeout=30)
        writers = Writers([going.graphql_url, staying.graphql_url])
        writing = asyncio.create_task(writers.run())
        await asyncio.sleep(1.5)
        going.process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(going.process.wait, 30)
        await asyncio.sleep(1.0)  # writes go on through the other instance
        writers.stop()
        await asyncio.wait_for(writing, 30)

        conn = await asyncpg.connect(
            postgres_url_for(private_postgres_url.rsplit("/", 1)[1], "postgresql")
        )
        try:
            last = {
                row["user_id"]: row["max"]
                for row in await conn.fetch(
                    "SELECT user_id, max(seq) FROM activities GROUP BY user_id"
                )
            }
            await checker.wait_for(last, timeout=30)
            pending = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        finally:
            await conn.close()
        report = await checker.stop()
        checker = None
    finally:
        if checker is not None:
            await checker.stop()
        first.stop()
        if second is not None:
            second.stop()
    assert exit_code == 0
    assert pending == 0, "the next relay left entries unpublished"
    for user in USERS:
        assert writers.acknowledged[user], user
        assert set(writers.acknowledged[user]) <= set(range(1, last[user] + 1))
    assert report.ok, report.summary()
    # Every subscriber of the leaving instance moved to the other one.
    assert all(r.reconnects >= 1 for r in report.users), report.summary()
