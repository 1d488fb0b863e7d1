"""Allow-list mode: only a manifest's operations run (Apollo or Relay format), HTTP and WS."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from db.migrate import upgrade
from gql import Settings, create_app
from gql.cli import main
from gql.persisted import load_manifest, parse_manifest

from .conftest import websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol

QUERY = 'query Status { userStatus(userId: "u1") { alertLevel } }'
SUBSCRIPTION = 'subscription Watch { userStatusChanged(userId: "u1") { version } }'
SEED = 'mutation Seed { updateUserStatus(input: {userId: "u1", alertLevel: WARNING}) { version } }'
UNLISTED = "{ __typename }"
RELAY_ID = "3f9bc1e0a4d27a6e5f0c1b2a3d4e5f60"  # relay-compiler's ids are MD5s, not SHA-256


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apollo_manifest() -> dict[str, Any]:
    return {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": sha256(QUERY), "name": "Status", "type": "query", "body": QUERY},
            {
                "id": sha256(SUBSCRIPTION),
                "name": "Watch",
                "type": "subscription",
                "body": SUBSCRIPTION,
            },
            {"id": sha256(SEED), "name": "Seed", "type": "mutation", "body": SEED},
        ],
    }


def relay_manifest() -> dict[str, str]:
    return {RELAY_ID: QUERY, "watch-1": SUBSCRIPTION, "seed-1": SEED}


MANIFESTS = {"apollo": apollo_manifest, "relay": relay_manifest}
IDS = {
    "apollo": {"query": sha256(QUERY), "subscription": sha256(SUBSCRIPTION)},
    "relay": {"query": RELAY_ID, "subscription": "watch-1"},
}


@pytest.fixture(params=sorted(MANIFESTS))
def manifest_format(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def app(tmp_path: Path, manifest_format: str) -> AsyncIterator[FastAPI]:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(MANIFESTS[manifest_format]()))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        escalation_policy="",  # type: ignore[arg-type]
        persisted_queries_manifest=str(path),  # type: ignore[arg-type]
    )
    await asyncio.to_thread(upgrade, settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def extension(key: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": key}}


async def post(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json=body, headers={"accept": "application/json"})
    assert response.status_code == 200, response.text
    decoded: dict[str, Any] = response.json()
    return decoded


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def test_listed_operations_run_by_id_or_text(
    client: httpx.AsyncClient, manifest_format: str
) -> None:
    key = IDS[manifest_format]["query"]
    expected = {"data": {"userStatus": None}}
    assert await post(client, extensions=extension(key)) == expected
    assert await post(client, query=QUERY) == expected
    assert await post(client, query=QUERY, extensions=extension(key)) == expected
    response = await client.get(
        "/graphql",
        params={"extensions": json.dumps(extension(key))},
        headers={"accept": "application/json"},
    )
    assert response.json() == expected


async def test_anything_else_is_refused(client: httpx.AsyncClient, manifest_format: str) -> None:
    refused = ["PERSISTED_QUERY_NOT_ALLOWED"]
    assert codes(await post(client, query=UNLISTED)) == refused
    # Not registered either: APQ is off while the allow-list applies.
    assert codes(await post(client, query=UNLISTED, extensions=extension(sha256(UNLISTED)))) == (
        refused
    )
    assert codes(await post(client, extensions=extension(sha256(UNLISTED)))) == refused
    # A listed document with one more space is another document.
    assert codes(await post(client, query=QUERY + " ")) == refused
    # A listed id with another document.
    key = IDS[manifest_format]["query"]
    assert codes(await post(client, query=UNLISTED, extensions=extension(key))) == [
        "PERSISTED_QUERY_HASH_MISMATCH"
    ]
    response = await client.get(
        "/graphql", params={"query": UNLISTED}, headers={"accept": "application/json"}
    )
    assert codes(response.json()) == refused


@pytest.mark.parametrize("protocol_name", [TRANSPORT_WS, LEGACY_WS])
async def test_websocket_operations_are_checked_too(
    app: FastAPI, manifest_format: str, protocol_name: str
) -> None:
    start = "subscribe" if protocol_name == TRANSPORT_WS else "start"
    key = IDS[manifest_format]["subscription"]
    unlisted = 'subscription { activityAdded(userId: "u1") { seq } }'
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await ws.send_json({"id": "1", "type": start, "payload": {"query": unlisted}})
        refused = await proto.receive()
        assert refused["type"] == "error" and refused["id"] == "1", refused
        assert "PERSISTED_QUERY_NOT_ALLOWED" in json.dumps(refused["payload"])

        await ws.send_json({"id": "2", "type": start, "payload": {"extensions": extension(key)}})
        await ws.send_json({"id": "3", "type": start, "payload": {"query": SUBSCRIPTION}})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert await post(http, query=SEED) == {"data": {"updateUserStatus": {"version": 1}}}
        # Each listed subscription gets the status (as its snapshot or as the change).
        seen = {}
        for _ in range(2):
            message = await proto.receive()
            assert message["type"] in ("next", "data"), message
            seen[message["id"]] = message["payload"]["data"]
        assert seen == {
            "2": {"userStatusChanged": {"version": 1}},
            "3": {"userStatusChanged": {"version": 1}},
        }


def test_both_manifest_formats_parse_to_id_and_document() -> None:
    assert parse_manifest(apollo_manifest()) == {
        sha256(QUERY): QUERY,
        sha256(SUBSCRIPTION): SUBSCRIPTION,
        sha256(SEED): SEED,
    }
    assert parse_manifest(apollo_manifest())[sha256(SEED)] == SEED
    assert parse_manifest(relay_manifest()) == relay_manifest()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "the manifest is not JSON"),
        ("[]", "must be a JSON object"),
        ("{}", "lists no operation"),
        ('{"a": 1}', "the document must be a non-empty string"),
        ('{"format": "other", "version": 1, "operations": []}', "an Apollo manifest needs"),
        (
            '{"format": "apollo-persisted-query-manifest", "version": 1, '
            '"operations": [{"id": 1}]}',
            "operations[0]: the id must be a string",
        ),
        (
            '{"format": "apollo-persisted-query-manifest", "version": 1, "operations": '
            '[{"id": "a", "body": "{ a }"}, {"id": "a", "body": "{ b }"}]}',
            "names two documents",
        ),
    ],
)
def test_a_bad_manifest_is_refused_with_why(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_manifest(path)


def test_a_bad_manifest_refuses_to_start_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.json"
    monkeypatch.setenv("PERSISTED_QUERIES_MANIFEST", str(missing))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/checkin.db")
    assert main(["serve"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("invalid setting PERSISTED_QUERIES_MANIFEST='/")
    assert ": cannot read the manifest: No such file or directory (example: " in lines[0]
