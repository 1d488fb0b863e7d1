"""MAX_RESPONSE_BYTES (gql/response_size.py) over HTTP and both WebSocket subprotocols."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI

from db.migrate import upgrade
from gql import Settings, create_app
from gql.response_size import ResponseTooLarge, encode_within

from .conftest import GraphQLClient, websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol, wait_subscribed

CAP = 4096
BIG = {"blob": "x" * 5000}
ADD = (
    'mutation($m: JSON) { addActivity(input: {userId: "u1", type: "note", metadata: $m}) { seq } }'
)
READ = '{ recentActivities(userId: "u1") { edges { node { seq metadata } } } }'


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with MAX_RESPONSE_BYTES=4096."""
    capped = Settings(**{**settings.model_dump(), "max_response_bytes": CAP})
    await asyncio.to_thread(upgrade, capped.database_url)
    application = create_app(capped)
    async with application.router.lifespan_context(application):
        yield application


def too_large(errors: list[dict[str, Any]]) -> None:
    (error,) = errors
    assert error["extensions"] == {"code": "RESPONSE_TOO_LARGE"}, error
    assert f"MAX_RESPONSE_BYTES={CAP}" in error["message"]


@pytest.mark.parametrize(
    "value",
    [
        {"data": {"a": [{"b": {"c": [1, 2.5, None, True, "é\ud83d\ude00\n"]}}] * 3}},
        {"data": {"x": {"y": {"z": {"w": {"v": {"u": {"t": {1: "int key"}}}}}}}}},
        {"data": {1: "int key", "x": ()}},
        [{"data": None}, {"errors": [{"message": "m", "path": ["a", 0]}]}],
        "plain",
    ],
    ids=["nested", "deep-int-keys", "int-keys", "batch", "scalar"],
)
def test_encoding_is_that_of_json_dumps(value: object) -> None:
    expected = json.dumps(value, separators=(",", ":"))
    assert encode_within(value, len(expected)) == expected
    with pytest.raises(ResponseTooLarge):
        encode_within(value, len(expected) - 1)


def test_encoding_stops_at_the_cap() -> None:
    # A page of 1,000 items of 1 KB: the encoder gives up after about 5 of them.
    page = {"data": {"p": {"edges": [{"node": {"m": "x" * 1000}} for _ in range(1000)]}}}
    written: list[int] = []
    original = json.dumps

    def counting(value: Any, **kwargs: Any) -> str:
        text = original(value, **kwargs)
        written.append(len(text))
        return text

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gql.response_size.json.dumps", counting)
        with pytest.raises(ResponseTooLarge):
            encode_within(page, 5000)
    assert sum(written) < 5000 + 1100


async def test_http_result_over_the_cap_is_one_error(graphql: GraphQLClient) -> None:
    await graphql.data(ADD, {"m": {"small": 1}})
    assert len(json.dumps(await graphql.data(READ))) < CAP
    await graphql.data(ADD, {"m": BIG})
    body = await graphql(READ)  # status 200: GraphQL over HTTP, application/json
    assert set(body) == {"errors"}, body
    too_large(body["errors"])
    # The same connection and schema go on serving results under the cap.
    assert (await graphql.data('{ userStatus(userId: "u1") { version } }')) == {"userStatus": None}


async def test_websocket_query_over_the_cap_gets_its_error(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    await graphql.data(ADD, {"m": BIG})
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("big", READ, {})
        message = await proto.receive()
        assert (message["type"], message["id"]) == ("next", "big"), message
        too_large(message["payload"]["errors"])
        assert (await proto.receive()) == {"type": "complete", "id": "big"}
        await proto.subscribe("small", "{ __typename }", {})
        assert (await proto.next_data("small")) == {"__typename": "Query"}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_subscription_event_over_the_cap_gets_its_error(
    app: FastAPI, graphql: GraphQLClient, protocol: str
) -> None:
    async with websocket(app, protocol) as ws:
        proto = Protocol(ws, protocol)
        await proto.init()
        await proto.subscribe(
            "s", 'subscription { activityAdded(userId: "u1") { seq metadata } }', {}
        )
        await wait_subscribed(app, 1)
        await graphql.data(ADD, {"m": BIG})
        await graphql.data(ADD, {"m": {"small": 1}})
        message = await proto.receive()
        assert message["type"] == ("next" if protocol == TRANSPORT_WS else "data"), message
        too_large(message["payload"]["errors"])
        # The subscription goes on with the next event.
        assert (await proto.next_data("s"))["activityAdded"]["metadata"] == {"small": 1}
