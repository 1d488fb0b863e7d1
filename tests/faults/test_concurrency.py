"""Fault test 6: concurrent writers of one user; every subscriber sees seq 1, 2, 3, ... exactly.

On SQLite (one writer at a time) and on PostgreSQL, where the writers really
run concurrently and queue on the user's sequence row lock, with the
PostgreSQL broker.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.delivery import DeliveryChecker
from tests.servers import start_server

ADD = 'mutation($u: String!) { addActivity(input: {userId: $u, type: "note"}) { seq } }'
WRITERS = 20
PER_WRITER = 10


@pytest.fixture(params=["sqlite", "pg"])
def database_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}  # start_server's default: a SQLite file in the test's directory
    url: str = request.getfixturevalue("private_postgres_url")
    return {"DATABASE_URL": url, "BROADCAST_URL": url}


async def test_concurrent_writers_reach_every_subscriber_in_order(
    tmp_path: Path, database_settings: dict[str, str]
) -> None:
    server = start_server(tmp_path, settings=database_settings)
    try:
        async with httpx.AsyncClient(timeout=30) as http:

            async def add() -> int:
                response = await http.post(
                    server.graphql_url, json={"query": ADD, "variables": {"u": "u1"}}
                )
                seq: int = response.json()["data"]["addActivity"]["seq"]
                return seq

            await add()  # the first event proves each subscription is live
            checkers = [DeliveryChecker([server.graphql_url], ["u1"]) for _ in range(3)]
            await asyncio.gather(*(c.start() for c in checkers))

            async def writer() -> list[int]:
                return [await add() for _ in range(PER_WRITER)]

            written = await asyncio.gather(*(writer() for _ in range(WRITERS)))
            seqs = sorted(s for batch in written for s in batch)
            assert seqs == list(range(2, 2 + WRITERS * PER_WRITER))
            total = 1 + WRITERS * PER_WRITER
            for checker in checkers:
                await checker.wait_for({"u1": total}, timeout=10)
            reports = [await checker.stop() for checker in checkers]
    finally:
        server.stop()
    for report in reports:
        [user] = report.users
        assert report.ok, report.summary()
        assert user.received == list(range(1, total + 1))
