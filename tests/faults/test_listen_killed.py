"""Fault test 3: the PostgreSQL broker's LISTEN connection is terminated mid-run.

1,000 activities for 10 users; the broker is PostgreSQL ``LISTEN``/``NOTIFY``
on the test's own database. Twice during the run, ``pg_terminate_backend``
kills the server's listening connection (found by its ``application_name``).
The server notices, ends live subscriptions with ``BROKER_DISCONNECTED``,
listens again; the delivery checker resumes with ``after`` and ends with
every event once and in order.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from sync.backends.postgres import LISTEN_APPLICATION_NAME
from tests.delivery import DeliveryChecker

from .conftest import ServerFactory
from .probes import wait_ready
from .processes import terminate_backends
from .workload import Workload, wait_delivered

USERS = [f"listen-{i}" for i in range(10)]
PER_USER = 100
RATE = 150.0
KILL_AT = (300, 600)


@pytest.mark.timeout(120)
async def test_killed_listen_connection_loses_nothing(
    private_postgres_url: str, servers: ServerFactory
) -> None:
    server = servers({"REALTIME_URL": "memory://", "BROADCAST_URL": private_postgres_url})
    load = Workload([server.graphql_url], USERS, PER_USER, rate=RATE)
    await load.run(count=1)
    checker = DeliveryChecker([server.graphql_url], USERS)
    await checker.start()

    writing = asyncio.create_task(load.run(first=1))
    recoveries = []
    for done in KILL_AT:
        await load.reached(done)
        reconnects = sum(report.reconnects for report in checker.reports.values())
        killed = await terminate_backends(
            private_postgres_url, application_name=LISTEN_APPLICATION_NAME
        )
        killed_at = time.monotonic()
        assert len(killed) == 1, killed
        written_before = {user: list(seqs) for user, seqs in load.written.items()}
        # Every live subscription ends and is resumed.
        while sum(report.reconnects for report in checker.reports.values()) < reconnects + 10:
            assert time.monotonic() - killed_at < 10, "subscriptions were not ended"
            await asyncio.sleep(0.02)
        ended = time.monotonic() - killed_at
        await wait_ready(server.base_url, "broker", True, timeout=10)
        recoveries.append((ended, time.monotonic() - killed_at))
        assert await wait_delivered(checker, written_before, timeout=30) < 30
    await writing
    await checker.wait_for({user: PER_USER for user in USERS}, timeout=30)
    report = await checker.stop()

    print(
        f"\nLISTEN connection killed at {KILL_AT} writes; (every subscription ended, listening"
        f" again) after {', '.join(f'({e:.2f}, {r:.2f})' for e, r in recoveries)} s;"
        f" {report.summary()}"
    )
    assert not load.errors, load.errors[:5]
    assert report.ok, report.summary()
    for user in report.users:
        assert user.expected == sorted(load.written[user.user_id]), user.user_id
        assert user.received == list(range(1, PER_USER + 1)), user.user_id
        assert user.reconnects >= len(KILL_AT), user.user_id
