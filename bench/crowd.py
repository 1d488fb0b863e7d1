"""M1 and H1: memory per idle subscription, and isolation from one hot user.

One ``serve`` (SQLite, memory store and broker) holds ``crowd`` sockets with one
subscription each, all to one userId. M1 is the RSS they add, per subscription.
Then, for ``hot_seconds`` with that user idle and again while it gets one event
a second (each delivered to the whole crowd), ``/healthz`` is polled and another
user's subscriber gets 5 events a second: H1 is their p99 when hot, beside idle.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import time
from typing import Any

import httpx

from .context import UNCAPPED, Context, add_activity, open_loop, wait_subscribed
from .procs import Crowd
from .report import Figure
from .server import Serve

__all__ = ["raise_fd_limit", "run_crowd"]

HOT = "h1-hot"
OTHER = "h1-other"
HOT_QUERY = f'subscription {{ activityAdded(userId: "{HOT}") {{ seq }} }}'
OTHER_QUERY = f'subscription {{ activityAdded(userId: "{OTHER}") {{ seq timestamp }} }}'
OTHER_RATE = 5.0
HEALTHZ_EVERY = 0.05
KIB = 1024


def raise_fd_limit(sockets: int) -> None:
    """Lift the soft descriptor limit to the hard one; servers and clients started here inherit it.

    Raises:
        RuntimeError: the hard limit is too low for ``sockets`` sockets in one process.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets + 1024
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise RuntimeError(f"the descriptor limit is {hard}; {needed} needed (ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _p99(samples: list[float]) -> float | None:
    if len(samples) < 2:
        return samples[0] if samples else None
    return statistics.quantiles(sorted(samples), n=100, method="inclusive")[98]


async def _phase(ctx: Context, serve: Serve, other: Crowd, *, hot: bool) -> dict[str, Any]:
    seconds = ctx.sizes.hot_seconds
    healthz: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            while not done.is_set():
                started = time.perf_counter()
                await http.get(f"{serve.base_url}/healthz")
                healthz.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(HEALTHZ_EVERY)

    await other.reset()
    poller = asyncio.create_task(poll())
    writes = [open_loop(serve, OTHER, rate=OTHER_RATE, seconds=seconds)]
    if hot:
        writes.append(open_loop(serve, HOT, rate=1.0, seconds=seconds))
    results = await asyncio.gather(*writes)
    done.set()
    await poller
    stats = await other.wait(results[0].scheduled, 20)
    return {
        "healthz_p99_ms": _p99(healthz),
        "healthz_samples": len(healthz),
        "other_p99_ms": stats.get("latency_ms", {}).get("p99"),
        "other_delivered": stats["count"],
        "other_expected": results[0].scheduled,
        "hot_events": results[1].scheduled if hot else 0,
        "failed_writes": sum(r.failed for r in results),
        "write_errors": [e for r in results for e in r.errors],
    }


def _incomplete(hot: dict[str, Any], hot_delivered: int, n: int) -> str:
    return (
        f"{hot['failed_writes']} writes failed, {hot['other_delivered']}/{hot['other_expected']}"
        f" of the other user's events and {hot_delivered}/{n * hot['hot_events']} of the hot "
        "user's deliveries arrived"
    )


async def run_crowd(ctx: Context, names: set[str]) -> list[Figure]:
    n = ctx.sizes.crowd
    raise_fd_limit(n)
    url = f"sqlite+aiosqlite:///{ctx.directory / 'crowd.db'}"
    serve = ctx.serve({**UNCAPPED, "DATABASE_URL": url}, name="crowd")
    figures = []
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            await add_activity(http, serve, OTHER, "warm-up")
        base = serve.rss_bytes()
        crowd = await Crowd.start(serve.ws_url, sockets=n, query=HOT_QUERY)
        try:
            await wait_subscribed(serve, n, timeout=300)
            # Let the handshakes' garbage settle before reading RSS.
            await asyncio.sleep(1.0)
            held = serve.rss_bytes()
            per = (held - base) / n / KIB
            if "M1" in names:
                figures.append(
                    Figure(
                        name="M1",
                        what=f"RSS per idle subscription, {n:,} sockets (one each)",
                        unit="KiB",
                        value=per,
                        reference=None,
                        reference_what=None,
                        target="<= 32 KiB",
                        met=per <= 32,
                        details={
                            "rss_before_mib": round(base / KIB / KIB, 1),
                            "rss_held_mib": round(held / KIB / KIB, 1),
                            "open_seconds": crowd.ready.get("open_seconds"),
                        },
                    )
                )
            if "H1" in names:
                figures.extend(await _h1(ctx, serve, crowd, n))
        finally:
            await crowd.close()
    finally:
        serve.kill()
    return figures


async def _h1(ctx: Context, serve: Serve, crowd: Crowd, n: int) -> list[Figure]:
    other = await Crowd.start(serve.ws_url, sockets=1, query=OTHER_QUERY, latency="activityAdded")
    try:
        await wait_subscribed(serve, n + 1)
        idle = await _phase(ctx, serve, other, hot=False)
        await crowd.reset()
        hot = await _phase(ctx, serve, other, hot=True)
        hot_delivered = (await crowd.wait(n * hot["hot_events"], 20))["count"]
    finally:
        await other.close()
    complete = (
        hot["other_delivered"] == hot["other_expected"]
        and hot_delivered == n * hot["hot_events"]
        and not hot["failed_writes"]
    )
    details = {"idle": idle, "hot": hot, "hot_delivered": hot_delivered, "crowd": n}
    figures = []
    for key, what, limit in (
        ("healthz_p99_ms", "/healthz p99", 100),
        ("other_p99_ms", "another user's event p99", 50),
    ):
        value = hot[key]
        figures.append(
            Figure(
                name="H1",
                what=f"{what} while one user's {n:,} subscriptions get 1 event/s",
                unit="ms",
                value=value,
                reference=idle[key],
                reference_what="the same, idle",
                target=f"<= {limit} ms",
                met=complete and value is not None and value <= limit,
                details=details,
                note="" if complete else _incomplete(hot, hot_delivered, n),
            )
        )
    return figures
