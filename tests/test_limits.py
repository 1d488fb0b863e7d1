"""Document limits (depth, aliases, tokens, cost; gql/limits.py), GET mutations, body size."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from graphql import OperationDefinitionNode, parse

from gql import Settings, create_schema
from gql.cost import coerced_variables, operation_cost

from .conftest import GraphQLClient, websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol

PAGE = (
    "edges { cursor node { id userId seq type description timestamp metadata } } "
    "pageInfo { hasNextPage }"
)


def deep(depth: int) -> str:
    """A document of ``depth`` (a leaf counts 0). The schema is 3 deep, so it is also invalid."""
    return "{ " + " { ".join(f"f{i}" for i in range(depth + 1)) + " }" * (depth + 1)


def aliased(count: int) -> str:
    return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


def pages(count: int, first: int | str = 100) -> str:
    fields = " ".join(
        f'p{i}: recentActivities(userId: "u1", first: {first}) {{ {PAGE} }}' for i in range(count)
    )
    return f"query($n: Int) {{ {fields} }}" if first == "$n" else f"{{ {fields} }}"


def messages(body: dict[str, Any]) -> str:
    return " | ".join(error["message"] for error in body.get("errors", []))


async def test_depth_over_10_is_refused(graphql: GraphQLClient) -> None:
    body = await graphql(deep(11))
    assert "exceeds maximum operation depth of 10" in messages(body)
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "depth" not in messages(await graphql(deep(10)))


async def test_aliases_over_15_are_refused(graphql: GraphQLClient) -> None:
    assert (await graphql.data(aliased(15)))["a14"] == "Query"
    body = await graphql(aliased(16))
    assert "aliases found" in messages(body), body
    assert body["data"] is None


def many_tokens(strings: int) -> str:
    """A valid query of ``strings`` + 18 tokens."""
    listed = " ".join(['"a"'] * strings)
    return (
        f'{{ recentActivities(userId: "u1", types: [{listed}]) {{ pageInfo {{ hasNextPage }} }} }}'
    )


async def test_tokens_over_2000_are_refused(graphql: GraphQLClient) -> None:
    # 2000 tokens parse (then the API refuses 1982 types, which is another limit).
    assert "tokens" not in messages(await graphql(many_tokens(1982)))
    body = await graphql(many_tokens(1983))
    assert "more than 2000 tokens" in messages(body), body
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


def test_cost_counts_fields_times_first() -> None:
    schema = create_schema()._schema
    document = parse(pages(1) + " fragment F on Activity { id seq }")
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    cost = operation_cost(schema, operation, {}, coerced_variables(schema, operation, {}))  # type: ignore[arg-type]
    # 1 for the list field + 100 x (edges 1 + cursor 1 + node 1 + 5 fields
    # + description 2 + metadata 16 + pageInfo 2): each first-selected field is multiplied.
    assert cost == 1 + 100 * 28
    with_variable = parse(pages(1, first="$n")).definitions[0]
    assert isinstance(with_variable, OperationDefinitionNode)
    for variables, first in (({"n": 3}, 3), ({}, 20)):
        coerced = coerced_variables(schema, with_variable, variables)
        assert operation_cost(schema, with_variable, {}, coerced) == 1 + first * 28  # type: ignore[arg-type]


async def test_cost_over_the_limit_is_refused(graphql: GraphQLClient) -> None:
    assert "errors" not in await graphql(pages(1))
    body = await graphql(pages(2))
    assert "costs 5602, over MAX_QUERY_COST=5000" in messages(body), body
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert body["data"] is None
    # A variable's value counts, not just literals.
    body = await graphql(pages(5, first="$n"), {"n": 100})
    assert "over MAX_QUERY_COST" in messages(body)
    assert "errors" not in await graphql(pages(5, first="$n"), {"n": 10})


async def test_fragments_cannot_hide_cost(graphql: GraphQLClient) -> None:
    spreads = " ".join(
        f'p{i}: recentActivities(userId: "u1", first: 100) {{ ...P }}' for i in range(5)
    )
    body = await graphql(f"{{ {spreads} }} fragment P on ActivityConnection {{ {PAGE} }}")
    assert "over MAX_QUERY_COST" in messages(body), body


async def test_limits_follow_the_settings(app: FastAPI, settings: Settings) -> None:
    tight = Settings(**{**settings.model_dump(), "max_query_depth": 2, "max_query_cost": 10})
    from gql import create_app

    application = create_app(tight)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://t"
        ) as http,
    ):
        graphql = GraphQLClient(http)
        body = await graphql('{ recentActivities(userId: "u1") { edges { node { id } } } }')
        assert "exceeds maximum operation depth of 2" in messages(body)
        body = await graphql('{ userStatus(userId: "u1") { userId version alertLevel } }')
        assert "errors" not in body
        body = await graphql(pages(1, first=1))
        assert "over MAX_QUERY_COST=10" in messages(body)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (deep(11), "maximum operation depth"),
        (aliased(16), "aliases found"),
        (pages(5), "over MAX_QUERY_COST"),
    ],
    ids=["depth", "aliases", "cost"],
)
async def test_limits_apply_over_websocket(app: FastAPI, document: str, reason: str) -> None:
    # The limits are schema extensions, so both subprotocols run them; the legacy one
    # only carries subscriptions, and the schema has no deep or costly subscription.
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("op", document, {})
        message = await proto.receive()
        assert message["type"] == "error", message
        assert reason in str(message["payload"]), message
        await proto.subscribe("next", "{ __typename }", {})
        assert (await proto.next_data("next")) == {"__typename": "Query"}


@pytest.mark.parametrize("document", [many_tokens(1983), "{ userStatus("], ids=["tokens", "syntax"])
async def test_a_document_that_does_not_parse_over_websocket_is_an_error_message(
    app: FastAPI, document: str
) -> None:
    # A fault of one operation, like a validation error: its id gets an error
    # message (PROTOCOL.md, Error) and the socket goes on.
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("op", document, {})
        message = await proto.receive()
        assert message["type"] == "error" and message["id"] == "op", message
        assert message["payload"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED", message
        await proto.subscribe("next", "{ __typename }", {})
        assert (await proto.next_data("next")) == {"__typename": "Query"}


async def test_legacy_subscriptions_get_the_same_limits(app: FastAPI) -> None:
    async with websocket(app, LEGACY_WS) as ws:
        proto = Protocol(ws, LEGACY_WS)
        await proto.init()
        aliases = " ".join(f'a{i}: activityAdded(userId: "u{i}") {{ id }}' for i in range(16))
        await proto.subscribe("op", f"subscription {{ {aliases} }}", {})
        message = await proto.receive()
        assert message["type"] == "error", message
        assert message["payload"]["message"] == "16 aliases found. Allowed: 15"


async def test_get_runs_queries_but_never_mutations(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}
    mutation = 'mutation { addActivity(input: {userId: "u1", type: "note"}) { id } }'
    response = await client.get("/graphql", params={"query": mutation})
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    assert "POST" in response.text
    # Nothing was written.
    response = await client.get(
        "/graphql", params={"query": '{ userStatus(userId: "u1") { version } }'}
    )
    recent = await client.post(
        "/graphql", json={"query": '{ recentActivities(userId: "u1") { edges { cursor } } }'}
    )
    assert recent.json()["data"]["recentActivities"]["edges"] == []


async def test_bodies_over_256_kib_get_413(client: httpx.AsyncClient) -> None:
    padding = " " * (256 * 1024)
    response = await client.post("/graphql", json={"query": "{ __typename }" + padding})
    assert response.status_code == 413
    assert "262144 bytes" in response.json()["errors"][0]["message"]

    async def chunks() -> Any:
        # No Content-Length: the middleware counts what arrives.
        yield b'{"query": "{ __typename }'
        for _ in range(300):
            yield b" " * 1024
        yield b'"}'

    response = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    small = await client.post("/graphql", json={"query": "{ __typename }" + " " * 200_000})
    assert small.status_code == 200


async def test_subscriptions_over_http_are_refused(client: httpx.AsyncClient) -> None:
    subscription = "subscription { activityFeedAdded { id } }"
    post = await client.post("/graphql", json={"query": subscription})
    get = await client.get("/graphql", params={"query": subscription})
    for response in (post, get):
        assert response.status_code == 400, response.text
        assert "WebSocket" in response.text


@pytest.mark.parametrize(
    "body",
    [b'"query"', b"42", b"null", b"[1, 2", b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000],
    ids=["string", "number", "null", "truncated", "not-utf8", "deeply-nested"],
)
async def test_bodies_that_are_not_json_objects_get_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text


async def test_limits_keep_the_validation_cache_hitting(graphql: GraphQLClient) -> None:
    # Rule classes made per operation would make every cache key new.
    from strawberry.extensions.validation_cache import _get_validate_cache

    from gql.schema import DOCUMENT_CACHE_SIZE

    cache = _get_validate_cache(DOCUMENT_CACHE_SIZE)
    query = '{ userStatus(userId: "cache-probe") { version } }'
    await graphql.data(query)
    hits = cache.cache_info().hits
    await graphql.data(query)
    await graphql.data(query)
    assert cache.cache_info().hits == hits + 2
    # The cost check still sees each operation's variables.
    assert "errors" not in await graphql(pages(5, first="$n"), {"n": 10})
    assert "over MAX_QUERY_COST" in messages(await graphql(pages(5, first="$n"), {"n": 100}))
