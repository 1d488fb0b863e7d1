"""Fixtures of the fault tests: a private Redis, and server processes stopped before teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import Server, start_server

from .processes import RedisProcess


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A running ``redis-server`` of this test's own; killed at the end."""
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def second_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """Another private ``redis-server`` (e.g. a store kept apart from a broker that fails)."""
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


ServerFactory = Callable[..., Server]


@pytest.fixture
def servers(tmp_path: Path, private_postgres_url: str) -> Iterator[ServerFactory]:
    """Start ``checkin-realtime serve`` processes on this test's own PostgreSQL database.

    Call it with the other settings (``REALTIME_URL``, ``BROADCAST_URL``, ...);
    ``DATABASE_URL`` is set. Every process is stopped before the database is dropped.
    """
    started: list[Server] = []

    def start(settings: dict[str, str], *, name: str = "server") -> Server:
        server = start_server(
            tmp_path,
            settings={"DATABASE_URL": private_postgres_url, "GRAPHIQL": "false", **settings},
            name=name,
        )
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
