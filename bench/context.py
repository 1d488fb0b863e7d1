"""What every figure's run shares: sizes, a scratch directory, PostgreSQL and Redis, helpers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .server import Serve, start_reference, start_serve

__all__ = ["FULL", "SMOKE", "Context", "Sizes", "metric", "wait_subscribed"]

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# The bench measures cost, not caps: every per-principal and per-address cap is lifted
# (0 turns a cap off), and the instance may hold the largest crowd plus a margin.
UNCAPPED = {
    "MAX_SUBSCRIPTIONS_PER_USER": "0",
    "MAX_SUBSCRIPTIONS_PER_SERVICE": "0",
    "MAX_SOCKETS_PER_USER": "0",
    "MAX_SOCKETS_PER_SERVICE": "0",
    "MAX_PENDING_SOCKETS_PER_ADDRESS": "0",
    "MAX_CONNECTIONS": "0",
}


@dataclass(frozen=True)
class Sizes:
    """How big and how long each figure runs. Durations in seconds."""

    name: str
    query_seconds: float
    query_warmup: float
    fanout_subscribers: int
    fanout_events: int
    latency_subscribers: int
    latency_seconds: float
    latency_rate: float
    crowd: int
    hot_seconds: float
    write_seconds: float


FULL = Sizes("full", 2.5, 0.5, 1000, 20, 1000, 5.0, 10.0, 10_000, 5.0, 5.0)
SMOKE = Sizes("smoke", 0.3, 0.2, 20, 3, 10, 1.0, 10.0, 50, 1.0, 1.0)


@dataclass
class Context:
    sizes: Sizes
    directory: Path
    postgres: bool
    redis: bool
    run_id: str
    # The HTTP load generator's own ceiling, measured once (bench.queries).
    ceiling: dict[str, Any] | None = None

    def serve(self, settings: dict[str, str], *, name: str) -> Serve:
        """``serve`` with ``settings``, without an access log (the references keep none)."""
        return start_serve(self.directory, settings, name=name, log_level="warning")

    def reference(self, database_url: str, *, name: str) -> Serve:
        """The raw reference app (:mod:`bench.reference`) reading ``database_url``."""
        return start_reference(self.directory, database_url, name=name)

    @asynccontextmanager
    async def postgres_database(self, name: str) -> AsyncIterator[str]:
        """A new, empty database ``bench_<run>_<name>``: its ``postgresql+asyncpg`` URL."""
        import asyncpg

        database = f"bench_{self.run_id}_{name}"
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        try:
            yield f"{base}/{database}"
        finally:
            admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await admin.close()

    @asynccontextmanager
    async def redis_url(self, name: str) -> AsyncIterator[str]:
        """``REDIS_URL`` with a prefix of this run's own; its keys are deleted after."""
        import redis.asyncio as redis

        prefix = f"bench-{self.run_id}-{name}:"
        try:
            yield f"{REDIS_URL}?prefix={prefix}"
        finally:
            client = redis.from_url(REDIS_URL)
            try:
                keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
                if keys:
                    await client.delete(*keys)
            finally:
                await client.aclose()


async def probe_services() -> tuple[bool, bool]:
    """Whether PostgreSQL and Redis answer."""
    postgres = redis_up = False
    try:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await conn.close()
        postgres = True
    except Exception:
        postgres = False
    try:
        import redis.asyncio as redis

        client = redis.from_url(REDIS_URL, socket_timeout=3)
        redis_up = bool(await client.ping())
        await client.aclose()
    except Exception:
        redis_up = False
    return postgres, redis_up


def metric(text: str, name: str) -> float:
    """The value of an unlabelled Prometheus sample ``name`` in ``text`` (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def wait_subscribed(serve: Serve, expected: int, timeout: float = 120.0) -> None:
    """Wait until the server's hub counts ``expected`` subscribers (``/metrics``)."""
    deadline = time.monotonic() + timeout
    seen = -1.0
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            seen = metric(
                (await http.get(f"{serve.base_url}/metrics")).text, "checkin_broadcast_subscribers"
            )
            if seen >= expected:
                return
            # No event says "all subscribed"; the gauge is polled.
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{seen:.0f} of {expected} subscriptions reached the server's hub")


ADD = (
    "mutation($u: String!, $d: String!) "
    '{ addActivity(input: {userId: $u, type: "note", description: $d}) { seq } }'
)


async def add_activity(http: httpx.AsyncClient, serve: Serve, user: str, description: str) -> Any:
    """One ``addActivity``; returns its ``seq``.

    Raises:
        RuntimeError: the server answered with errors.
    """
    response = await http.post(
        serve.graphql_url, json={"query": ADD, "variables": {"u": user, "d": description}}
    )
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"addActivity failed: {body['errors']}")
    return body["data"]["addActivity"]["seq"]


@dataclass
class Writes:
    """What an open-loop writer did."""

    scheduled: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


async def open_loop(serve: Serve, user: str, *, rate: float, seconds: float) -> Writes:
    """Write ``user`` at ``rate``/s for ``seconds``, on schedule (earlier writes may be pending)."""
    writes = Writes()
    async with httpx.AsyncClient(timeout=30) as http:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        writes.scheduled = max(1, int(rate * seconds))
        for n in range(writes.scheduled):
            delay = start + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(add_activity(http, serve, user, f"event {n}")))
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                writes.failed += 1
                if len(writes.errors) < 3:
                    writes.errors.append(repr(result)[:300])
    return writes
