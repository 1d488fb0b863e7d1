"""Fault test 2: the Redis broker is down for 10 s while 1,000 activities are written for 10 users.

The broker is a ``redis-server`` of the test's own, killed and restarted on
the same port (so the server's pub/sub connection is lost, not paused); the
store is a second private Redis and the database PostgreSQL.

What the service promises for a broker outage (README, "When a service fails"): mutations
keep succeeding; live subscriptions end with ``BROKER_DISCONNECTED`` and
``extensions.after``, the last seq they delivered; a subscription opened
during the outage gets the same error at once instead of hanging; a client
that resubscribes with ``after`` once the broker is back gets every event it
missed from the database, then live ones. The delivery checker does exactly
that, and must end with every event once and in order. Queries meanwhile
see every write that returned: the store does not wait for the broker.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.delivery import DeliveryChecker

from .conftest import ServerFactory
from .probes import first_answer, read_while, wait_ready
from .processes import RedisProcess
from .workload import Workload, wait_delivered

USERS = [f"broker-{i}" for i in range(10)]
PER_USER = 100
RATE = 100.0
DOWN_AFTER = 300
OUTAGE_WRITES_PER_USER = 60
OUTAGE_SECONDS = 10.0
# A subscription refused during the outage must say so about at once.
MAX_REFUSAL_SECONDS = 1.0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_broker_outage_ends_subscriptions_resumably_and_loses_nothing(
    own_redis: RedisProcess,
    second_redis: RedisProcess,
    servers: ServerFactory,
) -> None:
    server = servers({"REALTIME_URL": second_redis.url(), "BROADCAST_URL": own_redis.url("b:")})
    load = Workload([server.graphql_url], USERS, PER_USER, rate=RATE)
    await load.run(count=1)
    checker = DeliveryChecker([server.graphql_url], USERS)
    await checker.start()

    writing = asyncio.create_task(load.run(first=1, count=OUTAGE_WRITES_PER_USER - 1))
    await load.reached(DOWN_AFTER)
    own_redis.stop()
    down_at = time.monotonic()
    detected = await wait_ready(server.base_url, "broker", False, timeout=5)
    # A client arriving during the outage is told to come back, with its cursor.
    refused_in, refusal = await first_answer(server.ws_url, USERS[0], after=3, timeout=5)
    query_latencies = await read_while(
        server.graphql_url, load, OUTAGE_SECONDS - (time.monotonic() - down_at)
    )
    own_redis.start()
    up_at = time.monotonic()
    written_before = {user: list(seqs) for user, seqs in load.written.items()}
    recovering = asyncio.create_task(wait_delivered(checker, written_before, timeout=60))
    reconnected = await wait_ready(server.base_url, "broker", True, timeout=15)
    await writing
    await load.run(first=OUTAGE_WRITES_PER_USER)
    recovery = await recovering
    await checker.wait_for({user: PER_USER for user in USERS}, timeout=60)
    report = await checker.stop()

    outage_writes = load.latency_between(down_at, up_at)
    print(
        f"\nbroker down {up_at - down_at:.1f} s, noticed in {detected:.2f} s;"
        f" {len(outage_writes)} writes meanwhile, slowest {max(outage_writes):.2f} s;"
        f" a subscription during the outage refused in {refused_in:.3f} s;"
        f" {len(query_latencies)} queries meanwhile, slowest {max(query_latencies):.3f} s;"
        f" broker reconnected {reconnected:.1f} s and every event of the outage delivered"
        f" {recovery:.1f} s after Redis returned; {report.summary()}"
    )
    assert not load.errors, load.errors[:5]
    assert refusal["type"] == "next", refusal
    [error] = refusal["payload"]["errors"]
    assert error["extensions"] == {"code": "BROKER_DISCONNECTED", "after": 3}, error
    assert refused_in < MAX_REFUSAL_SECONDS
    assert report.ok, report.summary()
    for user in report.users:
        assert user.expected == sorted(load.written[user.user_id]), user.user_id
        assert user.received == list(range(1, PER_USER + 1)), user.user_id
        # The lost pub/sub connection ended every live subscription.
        assert user.reconnects >= 1, user.user_id
