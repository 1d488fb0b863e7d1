"""F1, L1, X1 and W1: deliveries/s, commit-to-client latency, across instances, and writes/s.

F1 sends events to ``fanout_subscribers`` graphql-transport-ws subscribers of one
user (SQLite, memory store and broker) and counts deliveries per second from the
first write to the last delivery; the reference is :mod:`bench.reference`
sending a prebuilt ``next`` frame to the same number of clients. L1, X1 and W1
run on PostgreSQL with a Redis store and a Redis broker, two instances.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx

from .context import UNCAPPED, Context, add_activity, open_loop, wait_subscribed
from .procs import Crowd, http_load
from .report import Figure
from .server import Serve

__all__ = ["run_f1", "run_latency"]

F1_USER = "f1"
F1_QUERY = (
    f'subscription {{ activityAdded(userId: "{F1_USER}") {{ seq type description timestamp }} }}'
)
L1_USER = "l1"
X1_USER = "x1"
W1_CONNECTIONS = 16
W1_BODY = json.dumps(
    {
        "query": 'mutation { addActivity(input: {userId: "w1-{c}", type: "note", '
        'description: "bench write"}) { seq } }'
    }
)
LAG = "checkin_relay_lag_seconds"


def _delivery(stats: dict[str, Any], started: float, expected: int) -> dict[str, Any]:
    elapsed = max(stats["last"] - started, 1e-9) if stats["count"] else 0.0
    return {
        "delivered": stats["count"],
        "expected": expected,
        "seconds": round(elapsed, 3),
        "rate": stats["count"] / elapsed if elapsed else 0.0,
        "other_messages": stats["other"],
        "samples": stats["samples"],
    }


async def run_f1(ctx: Context) -> Figure:
    n, events = ctx.sizes.fanout_subscribers, ctx.sizes.fanout_events
    url = f"sqlite+aiosqlite:///{ctx.directory / 'f1.db'}"
    serve = ctx.serve({**UNCAPPED, "DATABASE_URL": url}, name="f1")
    try:
        crowd = await Crowd.start(serve.ws_url, sockets=n, query=F1_QUERY)
        try:
            await wait_subscribed(serve, n)
            await crowd.reset()
            cpu = (await crowd.command("report"))["cpu"]
            async with httpx.AsyncClient(timeout=30) as http:
                started = time.monotonic()
                await asyncio.gather(
                    *(add_activity(http, serve, F1_USER, "bench") for _ in range(events))
                )
            stats = await crowd.wait(n * events, 60)
        finally:
            await crowd.close()
        ours = _delivery(stats, started, n * events)
        ours["client_cpu_fraction"] = round((stats["cpu"] - cpu) / max(ours["seconds"], 1e-9), 3)
    finally:
        serve.kill()
    reference = ctx.reference(url, name="f1-ref")
    try:
        crowd = await Crowd.start(reference.ws_url, sockets=n, query=F1_QUERY)
        try:
            await _wait_reference(reference, n)
            await crowd.reset()
            cpu = (await crowd.command("report"))["cpu"]
            async with httpx.AsyncClient(timeout=60) as http:
                started = time.monotonic()
                await http.post(f"{reference.base_url}/fire", params={"n": events})
            stats = await crowd.wait(n * events, 60)
        finally:
            await crowd.close()
        ref = _delivery(stats, started, n * events)
        ref["client_cpu_fraction"] = round((stats["cpu"] - cpu) / max(ref["seconds"], 1e-9), 3)
    finally:
        reference.kill()
    complete = ours["delivered"] == ours["expected"] and ref["delivered"] == ref["expected"]
    figure = Figure(
        name="F1",
        what=f"deliveries/s, {n} subscribers of one user, {events} events (SQLite)",
        unit="deliveries/s",
        value=ours["rate"],
        reference=ref["rate"],
        reference_what="raw WebSocket server, prebuilt frame",
        target=">= 0.8x",
        met=None,
        details={"serve": ours, "reference": ref},
    )
    figure.met = complete and figure.ratio is not None and figure.ratio >= 0.8
    if not complete:
        figure.note = "not every event arrived"
    return figure


async def _wait_reference(reference: Serve, expected: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            got = (await http.get(f"{reference.base_url}/subscribers")).json()["subscribers"]
            if got >= expected:
                return
            # Like serve's gauge: polled, nothing to await.
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{got} of {expected} subscribers reached the reference")


async def _open(ctx: Context, serve: Serve, user: str) -> Crowd:
    n = ctx.sizes.latency_subscribers
    query = f'subscription {{ activityAdded(userId: "{user}") {{ seq timestamp }} }}'
    crowd = await Crowd.start(serve.ws_url, sockets=n, query=query, latency="activityAdded")
    try:
        await wait_subscribed(serve, n)
    except BaseException:
        await crowd.close()
        raise
    return crowd


async def _measure(ctx: Context, crowd: Crowd, write_to: Serve, user: str) -> dict[str, Any]:
    n = ctx.sizes.latency_subscribers
    await crowd.reset()
    writes = await open_loop(
        write_to, user, rate=ctx.sizes.latency_rate, seconds=ctx.sizes.latency_seconds
    )
    stats = await crowd.wait(n * writes.scheduled, 20)
    latency = stats.get("latency_ms", {"n": 0, "p50": None, "p99": None})
    return {
        "events": writes.scheduled,
        "failed_writes": writes.failed,
        "write_errors": writes.errors,
        "delivered": stats["count"],
        "expected": n * writes.scheduled,
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "other_messages": stats["other"],
        "samples": stats["samples"],
    }


async def _l1_x1(ctx: Context, a: Serve, b: Serve | None) -> tuple[dict[str, Any], Any]:
    """L1 on ``a``, then X1 (subscribers on ``b``, writes to ``a``); both crowds open at once.

    Each crowd watches a user of its own, so that the one not measured stays idle.
    """
    opening = [_open(ctx, a, L1_USER)] + ([_open(ctx, b, X1_USER)] if b is not None else [])
    opened = await asyncio.gather(*opening, return_exceptions=True)
    crowds = [c for c in opened if isinstance(c, Crowd)]
    try:
        for failure in opened:
            if isinstance(failure, BaseException):
                raise failure
        l1 = await _measure(ctx, crowds[0], a, L1_USER)
        x1 = await _measure(ctx, crowds[1], a, X1_USER) if b is not None else None
    finally:
        for crowd in crowds:
            await crowd.close()
    return l1, x1


async def wait_leader(serve: Serve, timeout: float = 15.0) -> bool:
    """Wait until ``serve`` relays the outbox (``/readyz`` ``relay_leader``); whether it does."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            if (await http.get(f"{serve.base_url}/readyz")).json().get("relay_leader"):
                return True
            # Leadership is retried every RELAY_POLL_INTERVAL; nothing to await.
            await asyncio.sleep(0.1)
    return False


def _histogram(text: str, name: str) -> list[tuple[float, float]]:
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    return sorted(buckets)


def _quantile(
    before: list[tuple[float, float]], after: list[tuple[float, float]], q: float
) -> float | None:
    """Prometheus's histogram_quantile over the observations between two scrapes."""
    counts = [(bound, a - dict(before).get(bound, 0.0)) for bound, a in after]
    if not counts or counts[-1][1] <= 0:
        return None
    rank = q * counts[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return None


async def _w1(ctx: Context, serve: Serve) -> Figure:
    leader = await wait_leader(serve)
    async with httpx.AsyncClient(timeout=10) as http:
        before = _histogram((await http.get(f"{serve.base_url}/metrics")).text, LAG)
        result = await http_load(
            serve.graphql_url,
            body=W1_BODY,
            connections=W1_CONNECTIONS,
            seconds=ctx.sizes.write_seconds,
            warmup=0.5,
        )
        # The last writes of the window are relayed before their requests return.
        after = _histogram((await http.get(f"{serve.base_url}/metrics")).text, LAG)
    lag = _quantile(before, after, 0.99)
    lag_ms = None if lag is None else lag * 1000
    met = lag_ms is not None and lag_ms <= 10 and result["rps"] >= 500 and not result["errors"]
    return Figure(
        name="W1",
        what=f"addActivity mutations/s, {W1_CONNECTIONS} clients (a user each), PostgreSQL + Redis",
        unit="writes/s",
        value=result["rps"],
        reference=None,
        reference_what=None,
        target="report; relay lag p99 <= 10 ms at 500 writes/s",
        met=met,
        details={
            "relay_lag_p99_ms": lag_ms,
            "mutation_p50_ms": result["p50_ms"],
            "mutation_p99_ms": result["p99_ms"],
            "errors": result["errors"],
            "relay_leader": leader,
            "generator_cpu_fraction": result["cpu_fraction"],
            "lag_from": "checkin_relay_lag_seconds histogram, interpolated within buckets",
        },
        note=f"relay lag p99 {lag_ms:.1f} ms" if lag_ms is not None else "no relay lag observed",
    )


def _x1_note(extra: float | None, l1_ok: bool) -> str:
    if extra is None:
        return "no latency measured"
    if not l1_ok:
        return f"extra p99 {extra:+.1f} ms, not judged: L1 itself is over its target"
    return f"extra p99 {extra:+.1f} ms"


async def run_latency(ctx: Context, names: set[str]) -> list[Figure]:
    """L1 (one instance), X1 (writer and subscribers on different instances) and W1."""
    figures: list[Figure] = []
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(ctx.postgres_database("l1"))
        redis = await stack.enter_async_context(ctx.redis_url("l1"))
        settings = {
            **UNCAPPED,
            "DATABASE_URL": database,
            "REALTIME_URL": redis,
            "BROADCAST_URL": redis,
        }
        a = ctx.serve(settings, name="l1-a")
        stack.callback(a.kill)
        leader = "the writer's instance" if await wait_leader(a) else "the other instance"
        if names & {"L1", "X1"}:
            b = ctx.serve(settings, name="l1-b") if "X1" in names else None
            if b is not None:
                stack.callback(b.kill)
            l1, x1 = await _l1_x1(ctx, a, b)
            if b is not None:
                b.kill()
            complete = l1["delivered"] == l1["expected"] and not l1["failed_writes"]
            l1_ok = complete and l1["p99_ms"] is not None and l1["p99_ms"] <= 50
            n = ctx.sizes.latency_subscribers
            rate = ctx.sizes.latency_rate
            if "L1" in names:
                figures.append(
                    Figure(
                        name="L1",
                        what=f"commit -> client p99, {n} subscribers, {rate:g} events/s, "
                        "PostgreSQL + Redis store + Redis broker",
                        unit="ms",
                        value=l1["p99_ms"],
                        reference=None,
                        reference_what=None,
                        target="p99 <= 50 ms",
                        met=l1_ok,
                        details=l1,
                        note="" if l1["p50_ms"] is None else f"p50 {l1['p50_ms']:.1f} ms",
                    )
                )
            if x1 is not None:
                complete = complete and x1["delivered"] == x1["expected"]
                extra = (
                    None
                    if x1["p99_ms"] is None or l1["p99_ms"] is None
                    else x1["p99_ms"] - l1["p99_ms"]
                )
                figures.append(
                    Figure(
                        name="X1",
                        what="commit -> client p99, writer and subscribers on two instances",
                        unit="ms",
                        value=x1["p99_ms"],
                        reference=l1["p99_ms"],
                        reference_what="L1, one instance",
                        target="<= 5 ms extra",
                        # Against a saturated L1 the difference says nothing: not met.
                        met=complete and extra is not None and extra <= 5 and l1_ok,
                        details={**x1, "extra_p99_ms": extra, "relay_leader": leader},
                        note=_x1_note(extra, l1_ok),
                    )
                )
        if "W1" in names:
            figures.append(await _w1(ctx, a))
    return figures
