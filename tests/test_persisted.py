"""Persisted queries: APQ over GET, POST and both WebSocket subprotocols, the LRU, the hash."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from db.migrate import upgrade
from gql import Settings, create_app
from gql.codes import ErrorCode
from gql.persisted import PersistedQueries, PersistedQueryError

from .conftest import websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol

QUERY = '{ userStatus(userId: "u1") { alertLevel } }'
SUBSCRIPTION = 'subscription { userStatusChanged(userId: "u1") { alertLevel version } }'
JSON = {"accept": "application/json"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        relay_poll_interval=0.05,
        escalation_policy="",  # type: ignore[arg-type]
        apq_cache_size=3,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    await asyncio.to_thread(upgrade, settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def get(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    response = await client.get("/graphql", params=query, headers=JSON)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def post(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json=body, headers=JSON)
    assert response.status_code == 200, response.text
    decoded: dict[str, Any] = response.json()
    return decoded


async def seed(client: httpx.AsyncClient) -> None:
    body = await post(
        client,
        query='mutation { updateUserStatus(input: {userId: "u1", alertLevel: WARNING}) '
        "{ version } }",
    )
    assert body["data"]["updateUserStatus"]["version"] == 1, body


async def test_post_miss_then_register_then_hash_only(client: httpx.AsyncClient) -> None:
    await seed(client)
    miss = await post(client, extensions=persisted(QUERY))
    assert codes(miss) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert miss["errors"][0]["message"] == "PersistedQueryNotFound"  # Apollo matches it too
    assert "data" not in miss or miss["data"] is None

    registered = await post(client, query=QUERY, extensions=persisted(QUERY))
    assert registered == {"data": {"userStatus": {"alertLevel": "WARNING"}}}

    assert await post(client, extensions=persisted(QUERY)) == registered


async def test_get_with_the_hash_only_runs_the_stored_query(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert codes(await get(client, extensions=persisted(QUERY))) == ["PERSISTED_QUERY_NOT_FOUND"]
    first = await get(client, query=QUERY, extensions=persisted(QUERY))
    assert first == {"data": {"userStatus": {"alertLevel": "WARNING"}}}
    # The short, cacheable URL: no query parameter at all.
    assert await get(client, extensions=persisted(QUERY)) == first


async def test_a_hash_only_get_with_a_browser_accept_header_is_not_graphiql(
    client: httpx.AsyncClient,
) -> None:
    await post(client, query=QUERY, extensions=persisted(QUERY))
    response = await client.get(
        "/graphql", params={"extensions": json.dumps(persisted(QUERY))}, headers={"accept": "*/*"}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"userStatus": None}}


async def test_a_stored_mutation_still_needs_post(client: httpx.AsyncClient) -> None:
    mutation = (
        'mutation { recordCheckIn(input: {userId: "u2", intervalSeconds: 60}) '
        "{ activity { seq } } }"
    )
    done = await post(client, query=mutation, extensions=persisted(mutation))
    assert done["data"]["recordCheckIn"]["activity"]["seq"] == 1, done
    response = await client.get(
        "/graphql", params={"extensions": json.dumps(persisted(mutation))}, headers=JSON
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    again = await post(client, extensions=persisted(mutation))
    # seq 2 was the first check-in's status change; the GET wrote nothing.
    assert again["data"]["recordCheckIn"]["activity"]["seq"] == 3, again


async def test_a_hash_that_is_not_the_querys_is_refused_and_not_stored(
    client: httpx.AsyncClient,
) -> None:
    other = "{ __typename }"
    body = await post(client, query=QUERY, extensions=persisted(other))
    assert codes(body) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    assert codes(await post(client, extensions=persisted(other))) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize(
    "extension",
    [
        {"version": 2, "sha256Hash": sha256(QUERY)},
        {"sha256Hash": sha256(QUERY)},
        {"version": 1, "sha256Hash": 5},
        {"version": 1, "sha256Hash": "x" * 300},
        {"version": True, "sha256Hash": sha256(QUERY)},
        {"version": 1.0, "sha256Hash": sha256(QUERY)},
        {"version": "1", "sha256Hash": sha256(QUERY)},
        "not an object",
    ],
)
async def test_a_malformed_extension_is_a_bad_request(
    client: httpx.AsyncClient, extension: object
) -> None:
    body = await post(client, query=QUERY, extensions={"persistedQuery": extension})
    assert codes(body) == ["BAD_REQUEST"]


async def test_registering_with_a_hash_that_is_not_hex_is_a_bad_request(
    client: httpx.AsyncClient,
) -> None:
    body = await post(
        client, query=QUERY, extensions={"persistedQuery": {"version": 1, "sha256Hash": "abc"}}
    )
    assert codes(body) == ["BAD_REQUEST"]
    assert "64 hexadecimal digits" in body["errors"][0]["message"]


async def test_the_cache_keeps_the_most_recently_used_documents(
    client: httpx.AsyncClient,
) -> None:
    documents = [f"{{ a{n}: __typename }}" for n in range(4)]
    for document in documents[:3]:
        assert (await post(client, query=document, extensions=persisted(document)))["data"]
    # Using the oldest one makes the second the least recently used.
    assert (await post(client, extensions=persisted(documents[0])))["data"] == {"a0": "Query"}
    assert (await post(client, query=documents[3], extensions=persisted(documents[3])))["data"]
    assert codes(await post(client, extensions=persisted(documents[1]))) == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]
    for kept in (documents[0], documents[2], documents[3]):
        assert "errors" not in await post(client, extensions=persisted(kept))


async def test_documents_go_through_the_usual_limits(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    deep = "{ a: __typename " + "".join(f"b{n}: __typename " for n in range(20)) + "}"
    body = await post(client, query=deep, extensions=persisted(deep))
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]  # over MAX_ALIASES, stored or not
    assert codes(await post(client, extensions=persisted(deep))) == ["GRAPHQL_VALIDATION_FAILED"]


@pytest.mark.parametrize("protocol_name", [TRANSPORT_WS, LEGACY_WS])
async def test_websocket_subscribe_by_hash(
    app: FastAPI, client: httpx.AsyncClient, protocol_name: str
) -> None:
    await seed(client)
    start = "subscribe" if protocol_name == TRANSPORT_WS else "start"
    data = "next" if protocol_name == TRANSPORT_WS else "data"
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await ws.send_json(
            {"id": "1", "type": start, "payload": {"extensions": persisted(SUBSCRIPTION)}}
        )
        refused = await proto.receive()
        assert refused["type"] == "error" and refused["id"] == "1", refused
        errors = refused["payload"] if protocol_name == TRANSPORT_WS else [refused["payload"]]
        assert [error["extensions"]["code"] for error in errors] == ["PERSISTED_QUERY_NOT_FOUND"]

        payload = {"query": SUBSCRIPTION, "extensions": persisted(SUBSCRIPTION)}
        await ws.send_json({"id": "1", "type": start, "payload": payload})
        first = await proto.receive()
        assert first["type"] == data and first["id"] == "1", first
        assert first["payload"]["data"]["userStatusChanged"] == {
            "alertLevel": "WARNING",
            "version": 1,
        }
        # The same hash on the same socket, without the query: the socket is still open.
        await ws.send_json(
            {"id": "2", "type": start, "payload": {"extensions": persisted(SUBSCRIPTION)}}
        )
        second = await proto.receive()
        assert second["type"] == data and second["id"] == "2", second
        assert second["payload"]["data"] == first["payload"]["data"]


@pytest.mark.parametrize("protocol_name", [TRANSPORT_WS, LEGACY_WS])
async def test_websocket_hash_mismatch_is_an_error_for_that_operation(
    app: FastAPI, client: httpx.AsyncClient, protocol_name: str
) -> None:
    start = "subscribe" if protocol_name == TRANSPORT_WS else "start"
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        payload = {"query": SUBSCRIPTION, "extensions": persisted(QUERY)}
        await ws.send_json({"id": "1", "type": start, "payload": payload})
        refused = await proto.receive()
        assert refused["type"] == "error", refused
        assert "PERSISTED_QUERY_HASH_MISMATCH" in json.dumps(refused)
        # The socket goes on.
        await ws.send_json({"id": "2", "type": start, "payload": {"query": SUBSCRIPTION}})
        await seed(client)
        answer = await proto.receive()
        assert answer["id"] == "2" and answer["type"] in ("next", "data"), answer
        assert answer["payload"]["data"]["userStatusChanged"]["version"] == 1


async def test_apq_off_is_not_supported(tmp_path: Path) -> None:
    off = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/off.db",
        escalation_policy="",  # type: ignore[arg-type]
        apq_cache_size=0,
    )
    await asyncio.to_thread(upgrade, off.database_url)
    application = create_app(off)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            body = await post(http, query=QUERY, extensions=persisted(QUERY))
            assert codes(body) == ["PERSISTED_QUERY_NOT_SUPPORTED"]
            assert body["errors"][0]["message"] == "PersistedQueryNotSupported"
            # Without the extension the same query runs.
            assert await post(http, query=QUERY) == {"data": {"userStatus": None}}


def test_a_long_document_is_refused_not_stored() -> None:
    queries = PersistedQueries(cache_size=10, max_query_bytes=1024)
    long = "{ __typename }" + " " * 1024
    with pytest.raises(PersistedQueryError) as refused:
        queries.document(long, persisted(long))
    assert refused.value.code is ErrorCode.BAD_REQUEST
    assert "APQ_MAX_QUERY_BYTES" in str(refused.value)
    assert len(queries) == 0


def test_the_cache_never_holds_more_than_its_size() -> None:
    queries = PersistedQueries(cache_size=5, max_query_bytes=1024)
    for n in range(50):
        document = f"{{ a{n}: __typename }}"
        assert queries.document(document, persisted(document)) == document
        assert len(queries) == min(n + 1, 5)
    survivors = [f"{{ a{n}: __typename }}" for n in range(45, 50)]
    for document in survivors:
        assert queries.document(None, persisted(document)) == document
    with pytest.raises(PersistedQueryError) as missed:
        queries.document(None, persisted("{ a44: __typename }"))
    assert missed.value.code is ErrorCode.PERSISTED_QUERY_NOT_FOUND


@pytest.mark.parametrize(
    "key", ["abc", "a" * 63, "a" * 65, "g" * 64, sha256(QUERY)[:-1] + " "], ids=str.strip
)
async def test_a_hash_alone_that_is_not_64_hex_digits_is_a_bad_request_not_a_miss(
    client: httpx.AsyncClient, key: str
) -> None:
    body = await post(client, extensions={"persistedQuery": {"version": 1, "sha256Hash": key}})
    assert codes(body) == ["BAD_REQUEST"], body
    assert "64 hexadecimal digits" in body["errors"][0]["message"]


def test_an_upper_case_hash_names_the_same_document() -> None:
    queries = PersistedQueries(cache_size=5, max_query_bytes=1024)
    key = sha256(QUERY).upper()
    extension = {"persistedQuery": {"version": 1, "sha256Hash": key}}
    assert queries.document(QUERY, extension) == QUERY
    assert queries.document(None, persisted(QUERY)) == QUERY
    assert queries.document(None, extension) == QUERY
