"""GraphQL over HTTP (GraphQL Foundation spec): content negotiation, status codes per media
type, GET for queries only, and every HTTP-level refusal as a GraphQL response with a code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from db.migrate import upgrade
from gql import Settings, create_app
from gql.negotiation import (
    GRAPHQL_RESPONSE_JSON,
    JSON,
    negotiate,
    result_status,
    status_for_codes,
)

from .conftest import API_KEY, AUDIENCE, ISSUER, SECRET
from .servers import start_server

ACCEPT_NEW = "application/graphql-response+json, application/json;q=0.9"
MEDIA_TYPES = {JSON: "application/json", GRAPHQL_RESPONSE_JSON: ACCEPT_NEW}
CAP = 4096


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The HTTP layer is the same on every backend: one is enough here.
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        realtime_url="memory://",
        broadcast_url="memory://",
        relay_poll_interval=0.05,
        escalation_policy="",  # type: ignore[arg-type]
        max_response_bytes=CAP,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    await asyncio.to_thread(upgrade, settings.database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def post(
    client: httpx.AsyncClient, media_type: str, body: dict[str, Any] | bytes, **headers: str
) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/graphql",
        content=content,
        headers={"content-type": "application/json", "accept": MEDIA_TYPES[media_type], **headers},
    )


def request_error(response: httpx.Response, status: int, media_type: str, code: str) -> str:
    """Assert a GraphQL response of one error without ``data``; returns its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8", response.headers
    body = response.json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    message: str = error["message"]
    return message


# Content negotiation (spec: Body; RFC 9110 section 12.5.1).


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/json", JSON),
        ("Application/JSON; charset=utf-8", JSON),
        ("application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        (ACCEPT_NEW, GRAPHQL_RESPONSE_JSON),
        ("application/json, application/graphql-response+json", GRAPHQL_RESPONSE_JSON),
        ("application/json, application/graphql-response+json;q=0.5", JSON),
        ("application/graphql-response+json, */*", GRAPHQL_RESPONSE_JSON),
        ("application/json;q=0, */*", GRAPHQL_RESPONSE_JSON),
        ("application/graphql-response+json;q=0, */*;q=0.1", JSON),
        (
            "application/graphql-response+json, application/graphql+json, application/json, "
            "text/event-stream, multipart/mixed",
            GRAPHQL_RESPONSE_JSON,
        ),
        ("text/html", None),
        ("application/xml, text/plain;q=0.5", None),
        ("application/json;q=0", None),
        ("application/json;q=abc", None),
        ("application/json;q=2", None),
    ],
)
def test_negotiate_picks_the_best_supported_media_type(
    accept: str | None, expected: str | None
) -> None:
    assert negotiate(accept) == expected


@pytest.mark.parametrize("media_type", [JSON, GRAPHQL_RESPONSE_JSON])
async def test_a_result_comes_in_the_negotiated_media_type(
    client: httpx.AsyncClient, media_type: str
) -> None:
    response = await post(client, media_type, {"query": "{ __typename }"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.json() == {"data": {"__typename": "Query"}}
    get = await client.get(
        "/graphql",
        params={"query": "{ __typename }"},
        headers={"accept": MEDIA_TYPES[media_type]},
    )
    assert get.status_code == 200, get.text
    assert get.headers["content-type"] == f"{media_type}; charset=utf-8"


@pytest.mark.parametrize("accept", ["*/*", None])
async def test_any_or_no_accept_gets_application_json(
    client: httpx.AsyncClient, accept: str | None
) -> None:
    headers = {"content-type": "application/json"}
    if accept is not None:
        headers["accept"] = accept
    request = client.build_request("POST", "/graphql", content=b'{"query":"{__typename}"}')
    request.headers.update(headers)
    if accept is None:
        del request.headers["accept"]
    response = await client.send(request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"


async def test_nothing_acceptable_is_406_in_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"accept": "application/xml, text/plain"},
    )
    message = request_error(response, 406, JSON, "NOT_ACCEPTABLE")
    assert GRAPHQL_RESPONSE_JSON in message, message
    get = await client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"accept": "text/html"}
    )
    request_error(get, 406, JSON, "NOT_ACCEPTABLE")


async def test_a_browser_still_gets_graphiql(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


# Status codes of results (spec: Status Codes; the graphql-http audits).

REQUEST_ERRORS = {
    "parse": ({"query": "{"}, "GRAPHQL_PARSE_FAILED"),
    "validation": ({"query": "{ noSuchField }"}, "GRAPHQL_VALIDATION_FAILED"),
    "undefined-variable": (
        {"query": "{ userStatus(userId: $x) { version } }"},
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "unused-variable": ({"query": "query($x: String) { __typename }"}, "GRAPHQL_VALIDATION_FAILED"),
    "coercion-null": (
        {
            "query": "query($u: String!) { userStatus(userId: $u) { version } }",
            "variables": {"u": None},
        },
        "BAD_USER_INPUT",
    ),
    "coercion-missing": (
        {"query": "query($u: String!) { userStatus(userId: $u) { version } }"},
        "BAD_USER_INPUT",
    ),
    "literal-value": (
        {
            "query": 'mutation { addActivity(input: {userId: "u1", type: "note", '
            'timestamp: "2026-01-01T10:00:00"}) { id } }'
        },
        "BAD_USER_INPUT",
    ),
    "unknown-operation-name": (
        {"query": "query A { __typename }", "operationName": "B"},
        "BAD_REQUEST",
    ),
    "several-operations": (
        {"query": "query A { __typename } query B { __typename }"},
        "BAD_REQUEST",
    ),
}


@pytest.mark.parametrize(("body", "code"), REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
async def test_request_errors_are_200_in_json_and_400_without_data_in_the_new_type(
    client: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    legacy = await post(client, JSON, body)
    assert legacy.status_code == 200, legacy.text
    assert legacy.headers["content-type"] == "application/json; charset=utf-8"
    assert legacy.json()["data"] is None
    assert [e["extensions"]["code"] for e in legacy.json()["errors"]] == [code], legacy.text

    new = await post(client, GRAPHQL_RESPONSE_JSON, body)
    assert new.status_code == 400, new.text
    assert new.headers["content-type"] == f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
    assert "data" not in new.json(), new.text
    assert [e["extensions"]["code"] for e in new.json()["errors"]] == [code], new.text


@pytest.mark.parametrize("media_type", [JSON, GRAPHQL_RESPONSE_JSON])
async def test_a_result_with_data_stays_200_even_with_field_errors(
    client: httpx.AsyncClient, media_type: str
) -> None:
    # The resolver refuses first: 0, a field error: the operation ran, so data is present.
    page = 'recentActivities(userId: "u1", first: 0) { edges { cursor } }'
    body = {"query": f"{{ a: __typename b: {page} }}"}
    response = await post(client, media_type, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert "data" in result, result
    assert [e["extensions"]["code"] for e in result["errors"]] == ["BAD_USER_INPUT"]
    assert result["errors"][0]["path"] == ["b"]


@pytest.mark.parametrize("media_type", [JSON, GRAPHQL_RESPONSE_JSON])
async def test_a_result_over_max_response_bytes_is_200_in_json_and_400_in_the_new_type(
    client: httpx.AsyncClient, media_type: str
) -> None:
    add = (
        "mutation($m: JSON) { "
        'addActivity(input: {userId: "u1", type: "note", metadata: $m}) { seq } }'
    )
    assert (await post(client, JSON, {"query": add, "variables": {"m": {"b": "x" * 5000}}})).json()[
        "data"
    ]
    read = '{ recentActivities(userId: "u1") { edges { node { metadata } } } }'
    response = await post(client, media_type, {"query": read})
    request_error(response, 200 if media_type == JSON else 400, media_type, "RESPONSE_TOO_LARGE")


def test_the_status_of_a_response_without_data_follows_its_code() -> None:
    assert status_for_codes(["GRAPHQL_PARSE_FAILED"]) == 400
    assert status_for_codes(["SERVICE_UNAVAILABLE"]) == 503
    assert status_for_codes(["UNAUTHENTICATED", "FORBIDDEN"]) == 401
    assert status_for_codes(["FORBIDDEN"]) == 403
    assert status_for_codes([None]) == 400
    assert status_for_codes([]) == 400
    no_data = {"errors": [{"message": "m", "extensions": {"code": "SERVICE_UNAVAILABLE"}}]}
    assert result_status(GRAPHQL_RESPONSE_JSON, no_data) == 503
    assert result_status(JSON, no_data) == 200
    assert result_status(GRAPHQL_RESPONSE_JSON, {"data": None, **no_data}) == 200


# GET runs queries only (spec: GET).


@pytest.mark.parametrize("media_type", [JSON, GRAPHQL_RESPONSE_JSON])
async def test_a_mutation_by_get_is_405_with_allow_post_and_runs_nothing(
    client: httpx.AsyncClient, media_type: str
) -> None:
    mutation = 'mutation { addActivity(input: {userId: "u1", type: "note"}) { id } }'
    response = await client.get(
        "/graphql", params={"query": mutation}, headers={"accept": MEDIA_TYPES[media_type]}
    )
    message = request_error(response, 405, media_type, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"
    assert "POST" in message
    # Named among several operations, too.
    named = await client.get(
        "/graphql",
        params={
            "query": f"query Q {{ __typename }} {mutation.replace('mutation', 'mutation M')}",
            "operationName": "M",
        },
        headers={"accept": MEDIA_TYPES[media_type]},
    )
    request_error(named, 405, media_type, "METHOD_NOT_ALLOWED")
    recent = await post(
        client, JSON, {"query": '{ recentActivities(userId: "u1") { edges { cursor } } }'}
    )
    assert recent.json()["data"]["recentActivities"]["edges"] == []


@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "PATCH", "DELETE", "TRACE"])
async def test_other_methods_are_405_with_allow(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(
        method, "/graphql", json={"query": "{ __typename }"}, headers={"accept": ACCEPT_NEW}
    )
    request_error(response, 405, GRAPHQL_RESPONSE_JSON, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET, POST"


async def test_head_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.head("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


async def test_empty_get_parameters_count_as_absent(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql",
        params={"query": "{ __typename }", "variables": "", "operationName": "", "extensions": ""},
        headers={"accept": ACCEPT_NEW},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


# Every HTTP-level refusal is a GraphQL response with a code, in every media type.

BAD_REQUESTS = {
    "not-json": b'{ "not a JSON',
    "empty-body": b"",
    "not-utf8": b"\xff\xfe{}",
    "string": b'"query"',
    "null": b"null",
    "empty-object": b"{}",
    "no-query": b'{"qeury": "{ __typename }"}',
    "query-object": b'{"query": {"a": 1}}',
    "query-number": b'{"query": 0}',
    "operation-name-object": b'{"query": "{ __typename }", "operationName": {"a": 1}}',
    "operation-name-false": b'{"query": "{ __typename }", "operationName": false}',
    "variables-list": b'{"query": "{ __typename }", "variables": [7]}',
    "variables-string": b'{"query": "{ __typename }", "variables": "x"}',
    "extensions-number": b'{"query": "{ __typename }", "extensions": 0}',
    "batch": b'[{"query": "{ __typename }"}]',
    "surrogate": b'{"query": "{ __typename }", "operationName": "\\ud800"}',
    "subscription": b'{"query": "subscription { activityFeedAdded { id } }"}',
    # Python's json reads these constants; they are not JSON (RFC 8259 section 6).
    "variables-nan": b'{"query": "{ __typename }", "variables": {"n": NaN}}',
    "variables-infinity": b'{"query": "{ __typename }", "variables": {"n": Infinity}}',
    "extensions-minus-infinity": b'{"query": "{ __typename }", "extensions": {"n": -Infinity}}',
}


@pytest.mark.parametrize("media_type", [JSON, GRAPHQL_RESPONSE_JSON])
@pytest.mark.parametrize("body", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
async def test_bad_requests_are_400_bad_request_graphql_responses(
    client: httpx.AsyncClient, media_type: str, body: bytes
) -> None:
    response = await post(client, media_type, body)
    request_error(response, 400, media_type, "BAD_REQUEST")


@pytest.mark.parametrize("media_type", [JSON, GRAPHQL_RESPONSE_JSON])
async def test_a_subscription_by_get_is_400_and_says_websocket(
    client: httpx.AsyncClient, media_type: str
) -> None:
    response = await client.get(
        "/graphql",
        params={"query": "subscription { activityFeedAdded { id } }"},
        headers={"accept": MEDIA_TYPES[media_type]},
    )
    assert "WebSocket" in request_error(response, 400, media_type, "BAD_REQUEST")


@pytest.mark.parametrize("media_type", [JSON, GRAPHQL_RESPONSE_JSON])
@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_a_body_that_is_not_utf8_json_is_415(
    client: httpx.AsyncClient, media_type: str, content_type: str | None
) -> None:
    request = client.build_request("POST", "/graphql", content=b'{"query": "{ __typename }"}')
    request.headers["accept"] = MEDIA_TYPES[media_type]
    if content_type is None:
        request.headers.pop("content-type", None)
    else:
        request.headers["content-type"] = content_type
    response = await client.send(request)
    request_error(response, 415, media_type, "UNSUPPORTED_MEDIA_TYPE")


async def test_json_with_charset_utf8_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content='{"query": "{ __type(name: \\"Run🏃\\") { name } }"}'.encode(),
        headers={"content-type": "application/json; charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__type": None}}


@pytest.mark.parametrize("media_type", [JSON, GRAPHQL_RESPONSE_JSON])
async def test_a_body_over_max_body_bytes_is_413(
    client: httpx.AsyncClient, media_type: str
) -> None:
    padding = " " * (64 * 1024)
    response = await post(client, media_type, {"query": "{ __typename }" + padding})
    assert "65536 bytes" in request_error(response, 413, media_type, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize("media_type", [JSON, GRAPHQL_RESPONSE_JSON])
async def test_several_operations_need_an_operation_name_and_none_runs_without(
    client: httpx.AsyncClient, media_type: str
) -> None:
    document = (
        'mutation Add { addActivity(input: {userId: "u1", type: "note"}) { seq } } '
        'query Read { recentActivities(userId: "u1") { edges { cursor } } }'
    )
    refused = await post(client, media_type, {"query": document})
    codes = [e["extensions"]["code"] for e in refused.json()["errors"]]
    assert codes == ["BAD_REQUEST"], refused.text
    assert "operationName" in refused.json()["errors"][0]["message"]
    read = await post(client, media_type, {"query": document, "operationName": "Read"})
    assert read.json() == {"data": {"recentActivities": {"edges": []}}}, read.text
    added = await post(client, media_type, {"query": document, "operationName": "Add"})
    assert added.json() == {"data": {"addActivity": {"seq": 1}}}, added.text


# One mistake, one code: a value refused by its scalar, written in the document or sent
# as a variable.

LITERAL = 'mutation { addActivity(input: {userId: "u1", type: "note", timestamp: "%s"}) { id } }'
VARIABLE = "mutation($input: AddActivityInput!) { addActivity(input: $input) { id } }"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-01-01T10:00:00", "DateTime must include a timezone offset"),
        ("yesterday", "DateTime must be an ISO 8601 string"),
    ],
)
async def test_a_bad_value_gets_one_code_and_one_clean_message_literal_or_variable(
    client: httpx.AsyncClient, value: str, reason: str
) -> None:
    literal = (await post(client, JSON, {"query": LITERAL % value})).json()
    variable = (
        await post(
            client,
            JSON,
            {
                "query": VARIABLE,
                "variables": {"input": {"userId": "u1", "type": "note", "timestamp": value}},
            },
        )
    ).json()
    [from_literal] = literal["errors"]
    [from_variable] = variable["errors"]
    for error in (from_literal, from_variable):
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.timestamp"}
        assert error["message"].startswith(f"input.timestamp: {reason}"), error
        assert value in error["message"], error
        assert "Expected value of type" not in error["message"], error
        assert error["message"].count("DateTime") == 1, error
    assert from_literal["message"] == from_variable["message"]


async def test_a_bad_value_in_a_plain_variable_names_the_variable(
    client: httpx.AsyncClient,
) -> None:
    query = (
        'mutation($t: DateTime) { addActivity(input: {userId: "u1", type: "note", '
        "timestamp: $t}) { id } }"
    )
    body = (await post(client, JSON, {"query": query, "variables": {"t": "2026-01-01"}})).json()
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "t"}
    assert error["message"].startswith("t: DateTime must include a timezone offset"), error


async def test_a_bad_literal_in_a_list_or_a_default_gets_its_path(
    client: httpx.AsyncClient,
) -> None:
    listed = '{ recentActivities(userId: "u1", types: ["note", 7]) { edges { cursor } } }'
    [error] = (await post(client, JSON, {"query": listed})).json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "types[1]"}, error
    default = (
        'query($n: Int = "x") { recentActivities(userId: "u1", first: $n) { edges { cursor } } }'
    )
    [error] = (await post(client, JSON, {"query": default})).json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "n"}, error


# The refusals made outside the router: 401 (authentication) and 408 (a real server).


async def test_an_invalid_authorization_header_is_401_in_the_negotiated_type(
    settings: Settings,
) -> None:
    secured = Settings(
        **{
            **settings.model_dump(),
            "jwt_secret": SECRET,
            "jwt_audience": AUDIENCE,
            "jwt_issuer": ISSUER,
            "service_api_keys": [API_KEY],
        }
    )
    await asyncio.to_thread(upgrade, secured.database_url)
    application = create_app(secured)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://test"
        ) as client,
    ):
        for media_type in (JSON, GRAPHQL_RESPONSE_JSON):
            response = await post(
                client, media_type, {"query": "{ __typename }"}, authorization="Bearer nonsense"
            )
            request_error(response, 401, media_type, "UNAUTHENTICATED")
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_body_too_slow_is_408_in_the_negotiated_type(tmp_path: Path) -> None:
    server = start_server(tmp_path, settings={"REQUEST_BODY_TIMEOUT": "0.5"})
    try:
        for media_type in (JSON, GRAPHQL_RESPONSE_JSON):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"content-type: application/json\r\naccept: "
                + MEDIA_TYPES[media_type].encode()
                + b"\r\ncontent-length: 100\r\n\r\n{"
            )
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), reply
            assert f"content-type: {media_type}; charset=utf-8".encode() in head, head
            [error] = json.loads(body)["errors"]
            assert error["extensions"] == {"code": "REQUEST_TIMEOUT"}
    finally:
        server.stop()


async def test_a_whole_request_outage_is_503_unless_data_is_not_null(tmp_path: Path) -> None:
    # A database that cannot be opened: every read and write fails SERVICE_UNAVAILABLE.
    unreachable = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/missing-directory/checkin.db",
        realtime_url="",
        broadcast_url="memory://",
        relay_poll_interval=0.05,
        escalation_policy="",  # type: ignore[arg-type]
    )
    application = create_app(unreachable)
    read = '{ userStatus(userId: "u1") { version } }'
    write = (
        'mutation { recordCheckIn(input: {userId: "u1", intervalSeconds: 60}) '
        "{ status { version } } }"
    )
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://test"
        ) as client,
    ):
        for media_type in (JSON, GRAPHQL_RESPONSE_JSON):
            written = await post(client, media_type, {"query": write})
            assert written.status_code == 503, written.text
            assert written.headers["retry-after"] == "2"
            assert written.headers["content-type"] == f"{media_type}; charset=utf-8"
            assert written.json()["data"] is None
            codes = {e["extensions"]["code"] for e in written.json()["errors"]}
            assert codes == {"SERVICE_UNAVAILABLE"}, written.text
        # {"userStatus": null} is data that is not null: 2xx with the new media type (a MUST).
        legacy = await post(client, JSON, {"query": read})
        assert legacy.status_code == 503, legacy.text
        new = await post(client, GRAPHQL_RESPONSE_JSON, {"query": read})
        assert new.status_code == 200, new.text
        assert new.json()["data"] == {"userStatus": None}
        assert new.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
