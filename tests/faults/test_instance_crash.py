"""Fault test 4: one of two instances crashes (SIGKILL) mid-run.

Instances A and B share PostgreSQL and Redis (store and broker). A starts
first and relays the outbox; every subscriber starts on A. Writers for half
the users go to A, the others to B; a writer whose request to A fails at the
transport level sends it to B. At 300 of 1,000 writes A is killed: B takes
over the relay (PostgreSQL frees A's advisory lock with its connection), the
delivery checker's clients reconnect to B with their last cursor, and every
event, including each write that returned success, arrives exactly once and
in order.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import redis_url
from tests.delivery import DeliveryChecker

from .conftest import ServerFactory
from .workload import Workload, last_seqs, wait_delivered

USERS = [f"crash-{i}" for i in range(10)]
PER_USER = 100
RATE = 150.0
CRASH_AT = 300


async def _leader(base_url: str) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        leader: bool = (await http.get(f"{base_url}/readyz")).json()["relay_leader"]
        return leader


async def _wait_leader(base_url: str, timeout: float) -> float:
    started = time.monotonic()
    while not await _leader(base_url):
        assert time.monotonic() - started < timeout, f"{base_url} never took the relay over"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.timeout(120)
async def test_crash_of_the_relaying_instance_loses_nothing(
    redis_prefix: str, private_postgres_url: str, servers: ServerFactory
) -> None:
    shared = {"REALTIME_URL": redis_url(redis_prefix), "BROADCAST_URL": redis_url(redis_prefix)}
    a = servers(shared, name="a")
    await _wait_leader(a.base_url, timeout=10)
    b = servers(shared, name="b")
    assert not await _leader(b.base_url)
    load = Workload([a.graphql_url, b.graphql_url], USERS, PER_USER, rate=RATE, failover=True)
    await load.run(count=1)
    checker = DeliveryChecker([a.graphql_url, b.graphql_url], USERS)
    await checker.start()

    writing = asyncio.create_task(load.run(first=1))
    await load.reached(CRASH_AT)
    a.kill()
    crashed_at = time.monotonic()
    takeover = await _wait_leader(b.base_url, timeout=10)
    await writing
    written_at = time.monotonic()
    committed = await last_seqs(private_postgres_url, USERS)
    await wait_delivered(
        checker, {user: list(range(1, last + 1)) for user, last in committed.items()}, timeout=30
    )
    delivered_at = time.monotonic()
    report = await checker.stop()

    around = load.latency_between(crashed_at - 1, crashed_at + 3)
    print(
        f"\nA killed at {CRASH_AT} writes; B relays {takeover:.2f} s later;"
        f" writes in the 4 s around the crash: {len(around)}, slowest {max(around):.2f} s;"
        f" {load.transport_errors} writes resent to B; every event delivered"
        f" {delivered_at - written_at:.2f} s after the last write; {report.summary()}"
    )
    assert not load.errors, load.errors[:5]
    assert report.ok, report.summary()
    for user in report.users:
        # A write cut off by the crash may have committed before its resend:
        # it is an event too, with its own seq, and is delivered like the rest.
        assert user.expected == list(range(1, len(user.expected) + 1)), user.user_id
        assert set(load.written[user.user_id]) <= set(user.expected), user.user_id
        assert len(load.written[user.user_id]) == PER_USER
        assert user.received == user.expected, user.user_id
        assert user.reconnects >= 1, user.user_id
