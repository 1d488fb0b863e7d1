"""Logs: request ids, JSON lines, credentials and metadata never written, a quiet start."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from httpx_ws import aconnect_ws
from pydantic import ValidationError

from gql import Settings
from gql.logs import (
    REDACTED,
    JsonFormatter,
    TextFormatter,
    request_id,
    safe_url,
    scrub_text,
)
from gql.settings import describe_errors

from .conftest import websocket
from .helpers import TRANSPORT_WS, Protocol
from .servers import start_server

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlLXNlY3JldA"
FEED = "subscription { activityFeedAdded { seq } }"
ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq } }"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        relay_poll_interval=0.05,
        escalation_policy="",  # type: ignore[arg-type]
    )


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What the service's loggers write, through the text formatter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123", True),
        ("trace:1.2_3", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("a b", False),
        ("bad\u00e9", False),
        ("a;b", False),
    ],
)
async def test_http_requests_echo_a_valid_request_id_or_get_a_new_one(
    client: httpx.AsyncClient, given: str, kept: bool
) -> None:
    headers = {"X-Request-ID": given.encode()} if given else {}
    response = await client.get("/healthz", headers=headers)
    echoed = response.headers["x-request-id"]
    if kept:
        assert echoed == given
    else:
        assert echoed != given and len(echoed) == 32 and int(echoed, 16) >= 0


async def test_every_response_carries_one_even_refusals(client: httpx.AsyncClient) -> None:
    ids = set()
    for response in (
        await client.post("/graphql", json={"query": "{ __typename }"}),
        await client.post("/graphql", headers={"Authorization": "Bearer nope"}, json={}),
        await client.post("/graphql", content=b"x" * (300 * 1024)),
        await client.get("/nowhere"),
    ):
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 4


async def test_a_websocket_echoes_its_id_and_its_operations_log_with_it(
    app: FastAPI, lines: io.StringIO
) -> None:
    async with websocket(app, TRANSPORT_WS, headers={"X-Request-ID": "socket-42"}) as ws:
        assert ws.response is not None
        assert ws.response.headers["x-request-id"] == "socket-42"
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("f", FEED, {})
        await proto.stop("f")
        await proto.subscribe("g", FEED, {})
    started = [line for line in lines.getvalue().splitlines() if "subscription" in line]
    assert started, lines.getvalue()
    assert all("[socket-42]" in line for line in started), started


async def test_lines_logged_while_serving_a_request_carry_its_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gql.probe")
    seen: list[str | None] = []

    async def probe() -> None:
        seen.append(request_id())
        logger.warning("inside")

    # A route of the app's own, so that the line is logged inside the request.
    app.add_api_route("/probe", probe)
    logger.addHandler(handler)
    try:
        response = await client.get("/probe", headers={"X-Request-ID": "req-7"})
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 200
    assert seen == ["req-7"] and request_id() is None
    record = json.loads(out.getvalue())
    assert record["request_id"] == "req-7" and record["message"] == "inside"
    assert record["level"] == "WARNING" and record["logger"] == "gql.probe"


def test_json_lines_carry_tracebacks_and_are_scrubbed() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        record = logging.LogRecord(
            "x",
            logging.ERROR,
            __file__,
            1,
            "failed for Bearer %s",
            ("s3cr3t-token",),
            sys.exc_info(),
        )
    line = formatter.format(record)
    body = json.loads(line)
    assert body["message"] == f"failed for Bearer {REDACTED}"
    assert "ValueError" in body["exc_info"] and JWT not in line and "s3cr3t" not in line


@pytest.mark.parametrize(
    "text",
    [
        f'127.0.0.1:1 - "WebSocket /graphql?token={JWT}" [accepted]',
        '127.0.0.1:1 - "GET /graphql?query=x&api_key=k3y-value HTTP/1.1" 200',
        "authorization: Bearer abc.def-ghi",
        f"payload {{'authorization': '{JWT}'}}",
    ],
)
def test_secrets_in_any_line_are_redacted(text: str) -> None:
    scrubbed = scrub_text(text)
    assert REDACTED in scrubbed
    for secret in (JWT, "k3y-value", "abc.def-ghi"):
        assert secret not in scrubbed


def test_urls_in_start_up_lines_hide_passwords() -> None:
    assert safe_url("postgresql+asyncpg://app:pa55@db:5432/x") == (
        f"postgresql+asyncpg://app:{REDACTED}@db:5432/x"
    )
    assert safe_url("memory://") == "memory://"
    assert "hunter2" not in safe_url("redis://:hunter2@r:6379/0?prefix=p")


def test_an_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert any("LOG_FORMAT" in line for line in describe_errors(info.value))


def test_a_served_process_logs_json_without_secrets_and_starts_quietly(tmp_path: Path) -> None:
    marker = "metadata-secret-7f3a"
    server = start_server(tmp_path, settings={"LOG_FORMAT": "json"})
    try:
        with httpx.Client(timeout=10) as http:
            response = http.get(
                server.graphql_url,
                params={"query": "{ __typename }", "token": JWT},
                headers={"X-Request-ID": "req-json-1"},
            )
            assert response.headers["x-request-id"] == "req-json-1"
            body = {
                "query": ADD,
                "variables": {
                    "input": {"userId": "u1", "type": "note", "metadata": {"secret": marker}}
                },
            }
            assert http.post(server.graphql_url, json=body).status_code == 200
            # Dev mode ignores the header; it must not be written anywhere either.
            http.post(server.graphql_url, json=body, headers={"Authorization": f"Bearer {JWT}"})

        async def socket() -> None:
            async with (
                httpx.AsyncClient() as client,
                aconnect_ws(
                    f"{server.graphql_url}?access_token={JWT}", client, subprotocols=[TRANSPORT_WS]
                ) as ws,
            ):
                await ws.send_json({"type": "connection_init", "payload": {"authorization": JWT}})
                await ws.receive_json()

        asyncio.run(socket())
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert JWT not in log and marker not in log, log
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    messages = [record["message"] for record in records]
    access = [r for r in records if "GET /graphql?" in r["message"]]
    assert access and access[0]["request_id"] == "req-json-1"
    assert f"token={REDACTED}" in access[0]["message"].replace("%5B", "[").replace("%5D", "]")
    assert any("WebSocket /graphql?access_token=" in m for m in messages), messages
    # Start-up: one line per resource and the dev-mode warning; no Alembic or lifespan chatter.
    assert not any("alembic" in r["logger"] for r in records), messages
    assert not any("application startup" in m.lower() for m in messages), messages
    startup = [r for r in records if r["logger"] == "gql.app"]
    assert [m["message"].split(":")[0] for m in startup[:5]] == [
        "DEV MODE",
        "database",
        "realtime store",
        "broker",
        "outbox relay",
    ]
