"""Production mode (ENV=production) and dev mode: what each shows, and where each may run."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gql import Settings, create_app
from gql.cli import _is_loopback, main
from gql.context import Services

from .conftest import GraphQLClient, secure, token, websocket
from .helpers import STATUS_CHANGED, TRANSPORT_WS, Protocol

ADMIN = token("ops", role="admin")
SECRET_DETAIL = "password=hunter2 at db-primary.internal:5432"
STATUS = "query($u: String!) { userStatus(userId: $u) { userId } }"


@pytest.fixture(params=["production", "development"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def settings(settings: Settings, mode: str) -> Settings:
    return secure(settings, env=mode)


@pytest.fixture
def admin(graphql: GraphQLClient) -> GraphQLClient:
    return graphql.as_(ADMIN)


@pytest.fixture
def broken_reads(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"connection refused: {SECRET_DETAIL}")

    monkeypatch.setattr(services.reader, "user_status", boom)


def _messages(body: dict[str, Any]) -> str:
    return " | ".join(e["message"] for e in body.get("errors", []))


@pytest.mark.usefixtures("broken_reads")
async def test_internal_errors_are_masked_in_production(
    admin: GraphQLClient, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    body = await admin(STATUS, {"u": "u1"})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    if mode == "production":
        assert error["message"] == "Internal error"
        correlation_id = error["extensions"]["correlationId"]
        assert SECRET_DETAIL not in str(body)
        assert "Traceback" not in str(body)
        # The log has the real message and stack trace under the same id.
        logged = [r for r in caplog.records if correlation_id in r.getMessage()]
        assert logged, caplog.text
        assert SECRET_DETAIL in logged[0].getMessage()
        assert logged[0].exc_info is not None
    else:
        assert SECRET_DETAIL in error["message"]


@pytest.mark.usefixtures("broken_reads")
async def test_internal_errors_are_masked_over_websocket(app: FastAPI, mode: str) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init({"authorization": f"Bearer {ADMIN}"})
        await proto.subscribe("s", STATUS_CHANGED, {"u": "u1"})
        message = await proto.receive()
        assert (SECRET_DETAIL in str(message)) is (mode != "production"), message


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("{ userStatus { userId } }", "Argument 'Query.userStatus(userId:)' of type 'String!'"),
        ('{ recentActivities(userId: "u1", first: 1000) { pageInfo { hasNextPage } } }', "first"),
        ('{ userStatus(userId: "") { userId } }', "userId"),
        (
            'mutation { recordCheckIn(input: {userId: "u1", intervalSeconds: 1, '
            'timestamp: "yesterday"}) { status { version } } }',
            "DateTime must be an ISO 8601 string",
        ),
        ("{ userStatus(userId: 1) { userId } }", "String cannot represent a non string value"),
        ("{ userStatus(", "Syntax Error"),
    ],
    ids=["missing-argument", "bad-first", "empty-user", "bad-datetime", "wrong-type", "syntax"],
)
async def test_validation_and_bad_input_messages_stay_useful(
    admin: GraphQLClient, query: str, kept: str
) -> None:
    body = await admin(query)
    assert kept in _messages(body), body
    assert "Internal error" not in _messages(body)
    assert body["errors"][0]["extensions"]["code"] != "INTERNAL_SERVER_ERROR", body


async def test_no_introspection_or_suggestions_in_production(
    admin: GraphQLClient, mode: str
) -> None:
    body = await admin("{ __schema { queryType { name } } }")
    assert ("errors" in body) is (mode == "production"), body
    body = await admin('{ userStatu(userId: "u1") { userId } }')
    assert "Cannot query field 'userStatu'" in _messages(body)
    assert ("Did you mean" in _messages(body)) is (mode != "production"), body
    body = await admin('{ userStatus(userid: "u1") { userId } }')
    assert "Unknown argument 'userid'" in _messages(body)
    assert ("Did you mean" in _messages(body)) is (mode != "production"), body
    assert (await admin.data("{ __typename }")) == {"__typename": "Query"}


async def test_no_graphiql_in_production(client: httpx.AsyncClient, mode: str) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == (404 if mode == "production" else 200)


def test_production_refuses_to_start_without_authentication(settings: Settings) -> None:
    with pytest.raises(ValueError, match="ENV=production needs authentication"):
        Settings(database_url=settings.database_url, env="production")


def test_dev_mode_is_loud(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    dev = Settings(database_url=settings.database_url)
    assert not dev.auth_enabled
    with caplog.at_level(logging.WARNING, logger="gql.app"):
        create_app(dev)
    assert "DEV MODE" in caplog.text
    assert "every client is an admin" in caplog.text


def test_serve_refuses_a_public_host_in_dev_mode(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/never.db")
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "0.0.0.0" in err
    assert "JWT_SECRET" in err
    assert "127.0.0.1" in err
    assert not (tmp_path / "never.db").exists(), "it must refuse before migrating"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert _is_loopback(host) is loopback


async def test_an_empty_query_over_websocket_is_a_bad_request(app: FastAPI) -> None:
    # Found by tests/test_fuzz.py: it used to be an INTERNAL_SERVER_ERROR.
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init({"authorization": f"Bearer {ADMIN}"})
        await proto.subscribe("empty", "", {})
        message = await proto.receive()
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "BAD_REQUEST", message
        assert "missing" in message["payload"][0]["message"]


def test_serve_explains_unsafe_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENV", "production")
    assert main(["serve"]) == 2
    assert "ENV=production needs authentication: set JWT_SECRET" in capsys.readouterr().err
