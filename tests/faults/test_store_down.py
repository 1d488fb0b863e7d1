"""Fault test 1: the Redis store fails while 1,000 activities are written for 10 users.

The store is a ``redis-server`` of the test's own; the database and the
broker are PostgreSQL, so only the store fails. Two ways:

* ``stopped``: Redis is killed, then restarted empty (no persistence), as a
  crashed or redeployed Redis without persistence comes back.
* ``frozen``: Redis is paused (SIGSTOP): connections stay open and nothing
  answers, as with a hung Redis or a silent network. Calls must time out
  quickly instead of stalling every query.

Meanwhile every mutation succeeds, queries answer from the database (correct
and fast), and subscribers get every event exactly once, in order. The relay
publishes only after applying to the store, so events wait for the store to
return. Afterwards the store equals the database, user by user and field by
field, without any manual step.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.delivery import DeliveryChecker

from .conftest import ServerFactory
from .probes import read_while
from .processes import RedisProcess
from .workload import Workload, wait_delivered, wait_store_converged

USERS = [f"store-{i}" for i in range(10)]
PER_USER = 100
RATE = 100.0  # mutations per second, over all users
DOWN_AFTER = 300  # writes done when the store fails
OUTAGE_WRITES_PER_USER = 60  # writes of each user sent before the store is back, at most
OUTAGE_SECONDS = 5.0
# A query during the outage may wait for one socket timeout (1 s) at most.
MAX_QUERY_SECONDS = 1.5


@pytest.mark.timeout(120)
@pytest.mark.parametrize("failure", ["stopped", "frozen"])
async def test_store_outage_loses_nothing_and_the_store_converges(
    failure: str, own_redis: RedisProcess, private_postgres_url: str, servers: ServerFactory
) -> None:
    store_url = own_redis.url()
    server = servers({"REALTIME_URL": store_url, "BROADCAST_URL": private_postgres_url})
    load = Workload([server.graphql_url], USERS, PER_USER, rate=RATE)
    await load.run(count=1)  # a first event per user proves each subscription is live
    checker = DeliveryChecker([server.graphql_url], USERS)
    await checker.start()

    writing = asyncio.create_task(load.run(first=1, count=OUTAGE_WRITES_PER_USER - 1))
    await load.reached(DOWN_AFTER)
    if failure == "stopped":
        own_redis.stop()
    else:
        own_redis.pause()
    down_at = time.monotonic()
    query_latencies = await read_while(server.graphql_url, load, OUTAGE_SECONDS)
    if failure == "stopped":
        own_redis.start()
    else:
        own_redis.resume()
    up_at = time.monotonic()
    written_before = {user: list(seqs) for user, seqs in load.written.items()}
    recovering = asyncio.create_task(wait_delivered(checker, written_before, timeout=60))
    # Every user writes again after the store is back.
    await writing
    await load.run(first=OUTAGE_WRITES_PER_USER)
    recovery = await recovering
    await checker.wait_for({user: PER_USER for user in USERS}, timeout=60)
    report = await checker.stop()
    converged, differences = await wait_store_converged(
        private_postgres_url, store_url, USERS, timeout=30
    )

    outage_writes = load.latency_between(down_at, up_at)
    print(
        f"\n{failure}: store away {up_at - down_at:.1f} s;"
        f" {len(outage_writes)} writes meanwhile, slowest {max(outage_writes):.2f} s;"
        f" {len(query_latencies)} queries meanwhile, slowest {max(query_latencies):.3f} s,"
        f" median {sorted(query_latencies)[len(query_latencies) // 2]:.3f} s;"
        f" events of the outage delivered {recovery:.1f} s after the store returned;"
        f" store equal to the database {converged:.1f} s after delivery; {report.summary()}"
    )
    assert not load.errors, load.errors[:5]
    assert report.ok, report.summary()
    for user in report.users:
        assert user.expected == sorted(load.written[user.user_id]), user.user_id
        assert user.received == list(range(1, PER_USER + 1)), user.user_id
    assert not differences, "\n".join(differences[:10])
    assert max(query_latencies) < MAX_QUERY_SECONDS, query_latencies
