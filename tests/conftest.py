"""Shared fixtures: settings, a migrated database, the app inside its lifespan, clients."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from httpx_ws import AsyncWebSocketSession, aconnect_ws
from httpx_ws.transport import ASGIWebSocketTransport

from db.migrate import upgrade
from gql import Settings, create_app
from gql.context import Services


def require_service(available: bool, reason: str) -> None:
    """Skip when a service or tool is missing, but fail under CI, where everything must run."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/checkin.db"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        realtime_url="memory://",
        broadcast_url="memory://",
        relay_poll_interval=0.05,
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
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=self.headers
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
    expires_in: float | None = 300,
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
