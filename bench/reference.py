"""The same-run references: a raw Starlette app under the same uvicorn as ``serve``.

Started by the bench as its own process (``python -m bench.reference --port N``)
with ``BENCH_DATABASE_URL`` naming the database ``serve`` uses. Routes:

- ``GET /ping``: a constant body; the load generator's own ceiling.
- ``POST /memory``: ``recentActivities`` JSON of ``variables.u`` from rows read
  once at startup and kept in memory, as the realtime store keeps them (Q1).
- ``POST /sql``: the same JSON from the SQL ``serve`` runs for the query, per
  request (Q1-db).
- ``WS /graphql``: graphql-transport-ws ``connection_init``/``subscribe``
  answered by hand; ``POST /fire?n=20`` sends every subscriber ``n`` prebuilt
  ``next`` frames (F1). ``GET /subscribers`` counts them.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = ["EVENT", "SQL", "app"]

# What serve's recentActivities runs (db/activities.py): every column, first + 1 rows.
SQL = (
    "SELECT id, user_id, seq, type, description, timestamp, metadata, created_at "
    "FROM activities WHERE user_id = {p1} ORDER BY timestamp DESC, id DESC LIMIT {p2}"
)
# The F1 event, as serve sends it for the F1 subscription's selection.
EVENT = {
    "activityAdded": {
        "seq": 1,
        "type": "note",
        "description": "bench",
        "timestamp": "2026-12-01T00:00:00.000000Z",
    }
}
STORE_WINDOW = 100


def _iso(value: Any) -> str:
    """A timestamp as serve prints it: UTC, ISO 8601, ``Z``."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.astimezone(UTC).isoformat().replace("+00:00", "Z"))


def _node(row: Any) -> dict[str, Any]:
    return {
        "node": {
            "id": str(row[0]),
            "type": row[3],
            "description": row[4],
            "timestamp": _iso(row[5]),
        }
    }


class _Database:
    """One source: asyncpg for PostgreSQL, aiosqlite for SQLite."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")
        self.pool: Any = None
        self.sqlite: Any = None

    async def open(self) -> None:
        if self.postgres:
            import asyncpg

            dsn = self.url.replace("postgresql+asyncpg://", "postgresql://")
            self.pool = await asyncpg.create_pool(dsn, min_size=5, max_size=15)
        else:
            import aiosqlite

            self.sqlite = await aiosqlite.connect(self.url.split("///", 1)[1])

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        if self.sqlite is not None:
            await self.sqlite.close()

    async def rows(self, user_id: str, limit: int) -> list[Any]:
        if self.postgres:
            async with self.pool.acquire() as conn:
                return list(await conn.fetch(SQL.format(p1="$1", p2="$2"), user_id, limit))
        cursor = await self.sqlite.execute(SQL.format(p1="?", p2="?"), (user_id, limit))
        return list(await cursor.fetchall())

    async def users(self) -> list[str]:
        sql = "SELECT DISTINCT user_id FROM activities"
        if self.postgres:
            async with self.pool.acquire() as conn:
                return [r[0] for r in await conn.fetch(sql)]
        cursor = await self.sqlite.execute(sql)
        return [r[0] for r in await cursor.fetchall()]


class _State:
    def __init__(self) -> None:
        self.db = _Database(os.environ.get("BENCH_DATABASE_URL", "sqlite+aiosqlite:///checkin.db"))
        self.memory: dict[str, list[dict[str, Any]]] = {}
        self.subscribers: list[tuple[WebSocket, str]] = []


STATE = _State()


@asynccontextmanager
async def _lifespan(_: Starlette) -> AsyncIterator[None]:
    await STATE.db.open()
    for user in await STATE.db.users():
        STATE.memory[user] = [_node(r)["node"] for r in await STATE.db.rows(user, STORE_WINDOW)]
    yield
    await STATE.db.close()


async def _arguments(request: Request) -> tuple[str, int]:
    body = json.loads(await request.body())
    variables = body.get("variables") or {}
    return str(variables["u"]), int(variables.get("first", 20))


def _page(nodes: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"data": {"recentActivities": {"edges": nodes}}})


async def ping(_: Request) -> Response:
    return Response(b"{}", media_type="application/json")


async def memory(request: Request) -> JSONResponse:
    user, first = await _arguments(request)
    return _page([{"node": dict(n)} for n in STATE.memory.get(user, [])[:first]])


async def sql(request: Request) -> JSONResponse:
    user, first = await _arguments(request)
    rows = await STATE.db.rows(user, first + 1)
    return _page([_node(r) for r in rows[:first]])


async def graphql_ws(ws: WebSocket) -> None:
    await ws.accept(subprotocol="graphql-transport-ws")
    entry: tuple[WebSocket, str] | None = None
    try:
        while True:
            message = json.loads(await ws.receive_text())
            kind = message.get("type")
            if kind == "connection_init":
                await ws.send_text('{"type":"connection_ack"}')
            elif kind == "subscribe":
                entry = (ws, str(message["id"]))
                STATE.subscribers.append(entry)
            elif kind == "ping":
                await ws.send_text('{"type":"pong"}')
    except WebSocketDisconnect:
        pass
    finally:
        if entry is not None:
            STATE.subscribers.remove(entry)


async def fire(request: Request) -> Response:
    n = int(request.query_params.get("n", "1"))
    frames = [
        (ws, json.dumps({"id": op_id, "type": "next", "payload": {"data": EVENT}}))
        for ws, op_id in STATE.subscribers
    ]
    for _ in range(n):
        for ws, frame in frames:
            await ws.send_text(frame)
    return Response(b"{}", media_type="application/json")


async def subscribers(_: Request) -> JSONResponse:
    return JSONResponse({"subscribers": len(STATE.subscribers)})


app = Starlette(
    routes=[
        Route("/ping", ping),
        Route("/memory", memory, methods=["POST"]),
        Route("/sql", sql, methods=["POST"]),
        Route("/fire", fire, methods=["POST"]),
        Route("/subscribers", subscribers),
        WebSocketRoute("/graphql", graphql_ws),
    ],
    lifespan=_lifespan,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # The same HTTP and WebSocket implementations as serve (httptools, websockets).
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", http="httptools")


if __name__ == "__main__":
    main()
