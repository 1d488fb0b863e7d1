"""Shared fixtures: settings, a migrated database, the app inside its lifespan, clients.

The ``settings`` fixture runs every test that uses it against each backend
combination of :data:`BACKENDS`. PostgreSQL and Redis tests use a database of
their own (cloned from a migrated template) and a key/channel prefix of their
own, and remove both afterwards. Point them elsewhere with ``TEST_POSTGRES_URL``
(a server's ``postgres`` database) and ``TEST_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
import pytest
from fastapi import FastAPI
from httpx_ws import AsyncWebSocketSession, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport
from redis import Redis

from db.migrate import upgrade
from db.models import Base
from gql import Settings, create_app
from gql.context import Services

# `make test` runs two pytest-xdist workers (--dist loadgroup). Every fixture is
# per worker already: PostgreSQL databases and Redis prefixes get random names,
# servers free ports, fault tests their own Redis and PostgreSQL processes. The
# long tests here each load both cores with a server and hundreds of clients while
# they measure it, and the escalation tests time steps to within a second: they all
# run on one worker, one after the other, so that none of them runs beside another.
_ONE_AT_A_TIME = (
    "tests/test_soak.py",
    "tests/faults/test_slow_consumer.py",
    "tests/faults/test_store_down.py",
    "tests/test_escalation.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.nodeid.split("::")[0] in _ONE_AT_A_TIME:
            item.add_marker(pytest.mark.xdist_group("measured-under-load"))


def require_service(available: bool, reason: str) -> None:
    """Skip when a service or tool is missing, but fail under CI, where everything must run."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


T = TypeVar("T")

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def in_thread(function: Callable[[], T]) -> T:
    """Call ``function`` in a thread of its own and return its result.

    Sync fixtures may run inside pytest-asyncio's loop (when an async fixture
    asks for them), where ``asyncio.run`` is not allowed; a thread has no loop.
    """
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(function())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private loop (for sync fixtures)."""

    async def main() -> T:
        return await factory()

    return in_thread(lambda: asyncio.run(main()))


def postgres_url_for(database: str, scheme: str = "postgresql+asyncpg") -> str:
    """``TEST_POSTGRES_URL`` pointed at ``database``, with ``scheme``."""
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit(parts._replace(scheme=scheme, path="/" + database))


async def _admin(sql: str, *, database: str = "postgres") -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres_url_for(database, "postgresql"), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _postgres_reachable() -> bool:
    try:
        run_async(lambda: _admin("SELECT 1"))
    except Exception:
        return False
    return True


def _redis_reachable() -> bool:
    try:
        with Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            return bool(client.ping())
    except Exception:
        return False


@dataclass(frozen=True)
class PostgresServer:
    """A reachable PostgreSQL server and a migrated template database on it."""

    template: str

    def create(self, *, migrated: bool = True) -> str:
        """Create a fresh database (a copy of the template, or empty); return its name."""
        name = f"checkin_test_{secrets.token_hex(6)}"
        template = self.template if migrated else "template0"
        run_async(lambda: _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        return name

    def drop(self, name: str) -> None:
        run_async(lambda: _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    require_service(_postgres_reachable(), f"PostgreSQL is not reachable at {POSTGRES_URL}")
    template = f"checkin_template_{secrets.token_hex(6)}"
    run_async(lambda: _admin(f'CREATE DATABASE "{template}" TEMPLATE template0'))
    server = PostgresServer(template)
    try:
        in_thread(lambda: upgrade(postgres_url_for(template)))
        yield server
    finally:
        server.drop(template)


@pytest.fixture(scope="session")
def shared_postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create()
    try:
        yield name
    finally:
        postgres_server.drop(name)


@pytest.fixture
def postgres_url(shared_postgres_database: str) -> str:
    """A migrated database with empty tables: ``postgresql+asyncpg://...``.

    One database serves the tests of a run, one after the other, and is
    emptied before each: cloning a database per test costs ~0.3 s.
    """
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    run_async(
        lambda: _admin(f"TRUNCATE {tables} RESTART IDENTITY", database=shared_postgres_database)
    )
    return postgres_url_for(shared_postgres_database)


@pytest.fixture
def private_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A migrated database of this test's own: ``postgresql+asyncpg://...``."""
    name = postgres_server.create()
    try:
        yield postgres_url_for(name)
    finally:
        postgres_server.drop(name)


@pytest.fixture
def empty_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty database of this test's own: ``postgresql+asyncpg://...``."""
    name = postgres_server.create(migrated=False)
    try:
        yield postgres_url_for(name)
    finally:
        postgres_server.drop(name)


@pytest.fixture(scope="session")
def redis_server() -> str:
    require_service(_redis_reachable(), f"Redis is not reachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_server: str) -> Iterator[str]:
    """A key and channel prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"checkin_test_{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        with Redis.from_url(redis_server) as client:
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)


def redis_url(prefix: str) -> str:
    """``TEST_REDIS_URL`` with ``?prefix=``."""
    separator = "&" if "?" in REDIS_URL else "?"
    return f"{REDIS_URL}{separator}prefix={prefix}"


@pytest.fixture(params=["sqlite", "pg"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """An empty database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/checkin.db"
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


# database-store-broker
BACKENDS = ["sqlite-memory-memory", "pg-redis-redis", "pg-memory-pg"]


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Any) -> Settings:
    database, store, broker = request.param.split("-")
    if database == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp_path}/checkin.db"
    else:
        database_url = request.getfixturevalue("postgres_url")
    prefix = request.getfixturevalue("redis_prefix") if "redis" in (store, broker) else ""
    urls = {"memory": "memory://", "redis": redis_url(prefix), "pg": database_url}
    return Settings(
        database_url=database_url,
        realtime_url=urls[store],
        broadcast_url=urls[broker],
        relay_poll_interval=0.05,
        # Tests write past nextDues freely; the escalation tests turn it on.
        escalation_policy="",  # type: ignore[arg-type]
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    await asyncio.to_thread(upgrade, settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def services(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@asynccontextmanager
async def websocket(
    app: FastAPI, protocol: str, *, headers: dict[str, str] | None = None
) -> AsyncIterator[AsyncWebSocketSession]:
    """A raw WebSocket to /graphql speaking ``protocol``, before any message.

    The transport runs a task group, so it must be entered and left in the
    test's own task: use this inside the test, not as a fixture.
    """
    async with (
        httpx.AsyncClient(transport=ASGIWebSocketTransport(app), base_url="http://test") as http,
        aconnect_ws(
            "http://test/graphql", http, subprotocols=[protocol], headers=dict(headers or {})
        ) as ws,
    ):
        yield ws


class GraphQLClient:
    """POSTs operations to /graphql (with ``headers``) and returns the decoded body."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> None:
        self.http = http
        self.headers = dict(headers or {})

    def as_(self, token: str) -> GraphQLClient:
        """The same client sending ``Authorization: Bearer <token>``."""
        return GraphQLClient(self.http, bearer(token))

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, status: int = 200
    ) -> dict[str, Any]:
        # Encoded here, not by httpx: tests send what hostile clients can send
        # too (NaN, Infinity, lone surrogates as \\ud800 escapes).
        body_text = json.dumps({"query": query, "variables": variables or {}})
        response = await self.http.post(
            "/graphql",
            content=body_text,
            headers={"content-type": "application/json", **self.headers},
        )
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of a result that must have no errors."""
        body = await self(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
def graphql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


# Security: tokens and an app with authentication turned on.

SECRET = "test-secret-that-is-long-enough-for-hs256-and-for-hs512-too-0123456789"
API_KEY = "test-service-api-key-0123456789abcdef"
AUDIENCE = "checkin-realtime"
ISSUER = "https://auth.example.test"
_SECURITY_ENV = (
    "ENV",
    "JWT_SECRET",
    "JWT_ALGORITHM",
    "JWT_JWKS_URL",
    "JWT_JWKS_ALGORITHM",
    "JWT_AUDIENCE",
    "JWT_ISSUER",
    "JWT_LEEWAY",
    "SERVICE_API_KEYS",
    "ALLOWED_ORIGINS",
    "GRAPHIQL",
)


@pytest.fixture(autouse=True)
def _no_security_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() must not pick up a developer's exported secrets."""
    for name in _SECURITY_ENV:
        monkeypatch.delenv(name, raising=False)


def token(
    sub: str | None = "u1",
    *,
    role: str | None = None,
    # Module-level tokens are minted at collection: they must outlive the whole
    # run, slow tests included. Tests of expiry pass their own lifetime.
    expires_in: float | None = 6 * 3600,
    secret: str = SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """An HS256 JWT as the main app issues it. A claim given as ``None`` is left out."""
    now = time.time()
    payload: dict[str, Any] = {
        "sub": sub,
        "exp": None if expires_in is None else int(now + expires_in),
        "iat": int(now),
        "aud": AUDIENCE,
        "iss": ISSUER,
        "role": role,
        **claims,
    }
    return jwt.encode(
        {k: v for k, v in payload.items() if v is not None}, secret, algorithm=algorithm
    )


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def secure(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with authentication on (HS256, audience, issuer, one API key)."""
    values: dict[str, Any] = {
        **settings.model_dump(),
        "jwt_secret": SECRET,
        "jwt_audience": AUDIENCE,
        "jwt_issuer": ISSUER,
        "jwt_leeway": 0,
        "service_api_keys": [API_KEY],
        **changes,
    }
    return Settings(**values)
