"""Q1 and Q1-db: ``recentActivities`` requests/s against a raw Starlette route, same source.

Q1 serves from the realtime store (``memory://``); its reference keeps the same
rows in memory and builds the same JSON per request. Q1-db runs with the store
off; its reference runs the same SQL per request. Both answers are compared
with ``serve``'s (as JSON values) before anything is timed.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any

import httpx

from .context import UNCAPPED, Context, add_activity
from .procs import http_load
from .report import Figure
from .server import Serve

__all__ = ["QUERY", "generator_ceiling", "run_queries"]

QUERY = (
    "query($u: String!) { recentActivities(userId: $u, first: 20) "
    "{ edges { node { id type description timestamp } } } }"
)
USER = "q1"
SEEDED = 40
CONNECTIONS = 20
BODY = json.dumps({"query": QUERY, "variables": {"u": USER}})


async def _answer(url: str) -> Any:
    async with httpx.AsyncClient(timeout=10) as http:
        return (
            await http.post(url, content=BODY, headers={"content-type": "application/json"})
        ).json()


async def _load(ctx: Context, url: str) -> dict[str, Any]:
    return await http_load(
        url,
        body=BODY,
        connections=CONNECTIONS,
        seconds=ctx.sizes.query_seconds,
        warmup=ctx.sizes.query_warmup,
    )


def _details(ours: dict[str, Any], theirs: dict[str, Any], same: bool) -> dict[str, Any]:
    keep = ("requests", "p50_ms", "p99_ms", "errors", "cpu_fraction")
    return {
        "same_json": same,
        "serve": {k: round(ours[k], 3) for k in keep},
        "reference": {k: round(theirs[k], 3) for k in keep},
    }


async def _pair(
    ctx: Context,
    serve: Serve,
    reference_url: str,
    *,
    name: str,
    what: str,
    ref_what: str,
    target: float,
) -> Figure:
    mine, theirs = await _answer(serve.graphql_url), await _answer(reference_url)
    same = mine == theirs and len(mine["data"]["recentActivities"]["edges"]) == 20
    ours = await _load(ctx, serve.graphql_url)
    ref = await _load(ctx, reference_url)
    figure = Figure(
        name=name,
        what=what,
        unit="req/s",
        value=ours["rps"],
        reference=ref["rps"],
        reference_what=ref_what,
        target=f">= {target}x",
        met=None,
        details=_details(ours, ref, same),
    )
    ok = same and not ours["errors"] and not ref["errors"]
    figure.met = ok and figure.ratio is not None and figure.ratio >= target
    if not ok:
        figure.note = "answers differ or errors: " + json.dumps(mine)[:200]
    return figure


async def run_queries(ctx: Context, backend: str, names: set[str]) -> list[Figure]:
    """Q1 and/or Q1-db on ``backend`` (``sqlite`` or ``postgres``)."""
    figures = []
    async with AsyncExitStack() as stack:
        if backend == "postgres":
            url = await stack.enter_async_context(ctx.postgres_database("q1"))
        else:
            url = f"sqlite+aiosqlite:///{ctx.directory / 'q1.db'}"
        settings = {**UNCAPPED, "DATABASE_URL": url}
        serve = ctx.serve({**settings, "REALTIME_URL": "memory://"}, name=f"q1-{backend}")
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                # A few at a time: each waits for the relay, and they share one user's lock.
                for first in range(0, SEEDED, 8):
                    await asyncio.gather(
                        *(
                            add_activity(http, serve, USER, f"activity {n} of the Q1 user")
                            for n in range(first, min(first + 8, SEEDED))
                        )
                    )
            reference = ctx.reference(url, name=f"q1-ref-{backend}")
            stack.callback(reference.stop)
            if ctx.ceiling is None:
                ctx.ceiling = await generator_ceiling(reference, ctx)
            if "Q1" in names:
                figures.append(
                    await _pair(
                        ctx,
                        serve,
                        f"{reference.base_url}/memory",
                        name="Q1",
                        what=f"recentActivities, store on, {backend}",
                        ref_what="raw route, rows in memory",
                        target=0.6,
                    )
                )
        finally:
            serve.stop()
        if "Q1-db" in names:
            serve = ctx.serve({**settings, "REALTIME_URL": ""}, name=f"q1db-{backend}")
            try:
                figures.append(
                    await _pair(
                        ctx,
                        serve,
                        f"{reference.base_url}/sql",
                        name="Q1-db",
                        what=f"recentActivities, store off, {backend}",
                        ref_what="raw route, same SQL",
                        target=0.5,
                    )
                )
            finally:
                serve.stop()
    return figures


async def generator_ceiling(reference: Serve, ctx: Context) -> dict[str, Any]:
    """The load generator against the reference's constant route: a rate no figure gets near."""
    result = await http_load(
        f"{reference.base_url}/ping",
        body=None,
        connections=CONNECTIONS,
        seconds=ctx.sizes.query_seconds,
        warmup=ctx.sizes.query_warmup,
    )
    return {
        "what": f"the HTTP load generator, {CONNECTIONS} connections, against a constant route",
        "rps": round(result["rps"], 1),
        "cpu_fraction": round(result["cpu_fraction"], 3),
    }
