"""Bad input gets a GraphQL error with extensions.code, a message naming the field and the limit,
and leaves no row behind."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import Activity, OutboxEntry, UserSequence, UserStatus
from gql.context import Services

from .conftest import GraphQLClient

ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { id } }"
CHECK_IN = (
    "mutation($input: RecordCheckInInput!) { recordCheckIn(input: $input) { status { version } } }"
)
UPDATE = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { version } }"
RECENT = """query($u: String!, $first: Int, $after: String, $types: [String!]) {
  recentActivities(userId: $u, first: $first, after: $after, types: $types) { edges { cursor } }
}"""


async def _row_counts(services: Services) -> dict[str, int]:
    async with services.sessions() as session:
        return {
            model.__tablename__: int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (Activity, UserStatus, OutboxEntry, UserSequence)
        }


def _activity(**overrides: Any) -> dict[str, Any]:
    return {"input": {"userId": "u1", "type": "note", **overrides}}


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


WRITE_CASES = [
    pytest.param(ADD, _activity(userId=""), "input.userId", "empty", id="empty-user-id"),
    pytest.param(ADD, _activity(userId="x" * 256), "input.userId", "255", id="long-user-id"),
    pytest.param(ADD, _activity(type="Check In"), "input.type", "[a-z0-9_.-]", id="bad-type"),
    pytest.param(ADD, _activity(type="x" * 65), "input.type", "1-64", id="long-type"),
    pytest.param(
        ADD, _activity(description="d" * 2001), "input.description", "2000", id="long-description"
    ),
    pytest.param(ADD, _activity(metadata=[1, 2]), "input.metadata", "object", id="metadata-list"),
    pytest.param(ADD, _activity(metadata="x"), "input.metadata", "object", id="metadata-string"),
    pytest.param(
        ADD, _activity(metadata={"k": "v" * 17_000}), "input.metadata", "16384", id="metadata-big"
    ),
    pytest.param(
        ADD, _activity(timestamp="2026-01-01T10:00:00"), "input.timestamp", "timezone", id="naive"
    ),
    pytest.param(
        ADD, _activity(timestamp="yesterday"), "input.timestamp", "ISO 8601", id="unparseable"
    ),
    pytest.param(
        ADD, _activity(timestamp="2999-01-01T00:00:00Z"), "input.timestamp", "future", id="future"
    ),
    pytest.param(
        ADD, _activity(metadata=_nested(33)), "input.metadata", "32 levels", id="metadata-deep"
    ),
    pytest.param(
        ADD, _activity(metadata=_nested(900)), "input.metadata", "32 levels", id="metadata-900"
    ),
    pytest.param(
        ADD, _activity(metadata={"n": 2**53}), "input.metadata", "2^53 - 1", id="metadata-2^53"
    ),
    pytest.param(
        ADD, _activity(metadata={"n": [-(2**63)]}), "input.metadata", "2^53 - 1", id="metadata-neg"
    ),
    pytest.param(ADD, _activity(userId="\ud800"), "input.userId", "surrogate", id="surrogate-id"),
    pytest.param(
        ADD, _activity(metadata={"\ud800": 1}), "input.metadata", "surrogate", id="surrogate-key"
    ),
    pytest.param(
        CHECK_IN,
        {"input": {"userId": "u1", "intervalSeconds": -1}},
        "input.intervalSeconds",
        ">= 0",
        id="negative-interval",
    ),
    pytest.param(
        CHECK_IN,
        {"input": {"userId": "", "intervalSeconds": 60}},
        "input.userId",
        "empty",
        id="check-in-empty-user",
    ),
    pytest.param(
        CHECK_IN,
        {"input": {"userId": "u1", "intervalSeconds": 60, "timestamp": "2026-01-01 10:00"}},
        "input.timestamp",
        "timezone",
        id="check-in-naive",
    ),
    pytest.param(
        CHECK_IN,
        {"input": {"userId": "u1", "intervalSeconds": 60, "timestamp": "2999-01-01T00:00:00Z"}},
        "input.timestamp",
        "future",
        id="check-in-future",
    ),
    pytest.param(
        UPDATE,
        {"input": {"userId": "u1", "alertLevel": None}},
        "input.alertLevel",
        "null",
        id="null-alert-level",
    ),
    pytest.param(
        UPDATE,
        {"input": {"userId": "c7", "lastCheckIn": "9999-12-31T23:59:59Z"}},
        "input.lastCheckIn",
        "future",
        id="status-last-check-in-future",
    ),
    pytest.param(
        UPDATE,
        {"input": {"userId": "u1", "nextDue": "2026-01-01T10:00:00"}},
        "input.nextDue",
        "timezone",
        id="status-naive",
    ),
]


@pytest.mark.parametrize(("query", "variables", "field", "limit"), WRITE_CASES)
async def test_bad_write_is_rejected_and_stores_nothing(
    graphql: GraphQLClient,
    services: Services,
    query: str,
    variables: dict[str, Any],
    field: str,
    limit: str,
) -> None:
    body = await graphql(query, variables)
    assert body.get("data") is None or all(v is None for v in body["data"].values())
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == field, error
    assert field.rpartition(".")[2] in error["message"], error["message"]
    assert limit in error["message"], error["message"]
    assert await _row_counts(services) == {
        "activities": 0,
        "user_status": 0,
        "outbox": 0,
        "user_sequences": 0,
    }


# NaN and Infinity are not JSON (RFC 8259): a body carrying them is refused
# whole, before any field is read, as any body that is not JSON.
NOT_JSON_CASES = [
    pytest.param(
        {"input": {"userId": "u1", "type": "note", "metadata": {"a": float("nan")}}},
        id="metadata-nan",
    ),
    pytest.param(
        {"input": {"userId": "u1", "type": "note", "metadata": {"a": [float("inf")]}}},
        id="metadata-infinity",
    ),
]


@pytest.mark.parametrize("variables", NOT_JSON_CASES)
async def test_a_body_with_nan_or_infinity_is_bad_request_and_stores_nothing(
    graphql: GraphQLClient, services: Services, variables: dict[str, Any]
) -> None:
    body = await graphql(ADD, variables, status=400)
    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST", error
    assert "JSON" in error["message"], error["message"]
    assert await _row_counts(services) == {
        "activities": 0,
        "user_status": 0,
        "outbox": 0,
        "user_sequences": 0,
    }


def _cursor(timestamp: str, activity_id: int | str) -> str:
    text = f"a1:{timestamp}|{activity_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


READ_CASES = [
    pytest.param({"u": "u1", "first": 0}, "first", "between 1 and 100", id="first-zero"),
    pytest.param({"u": "u1", "first": 101}, "first", "between 1 and 100", id="first-101"),
    pytest.param({"u": "u1", "after": "not-a-cursor"}, "after", "cursor", id="bad-cursor"),
    pytest.param({"u": "u1", "after": "YTE6eHx5"}, "after", "cursor", id="forged-cursor"),
    pytest.param(
        {"u": "u1", "after": _cursor("2026-01-01T00:00:00+00:00", 2**63)},
        "after",
        "cursor",
        id="cursor-id-2^63",
    ),
    pytest.param(
        {"u": "u1", "after": _cursor("2026-01-01T00:00:00+00:00", 0)},
        "after",
        "cursor",
        id="cursor-id-0",
    ),
    pytest.param(
        {"u": "u1", "after": _cursor("2026-01-01T00:00:00+00:00", "+1_0")},
        "after",
        "cursor",
        id="cursor-id-spelling",
    ),
    pytest.param(
        {"u": "u1", "after": _cursor("2026-01-01T00:00:00+00:00", "\u0661")},
        "after",
        "cursor",
        id="cursor-id-arabic-digit",
    ),
    pytest.param({"u": ""}, "userId", "empty", id="empty-user"),
    pytest.param({"u": "u1", "types": ["BAD TYPE"]}, "types", "[a-z0-9_.-]", id="bad-types"),
]


@pytest.mark.parametrize(("variables", "field", "limit"), READ_CASES)
async def test_bad_read_arguments_are_rejected(
    graphql: GraphQLClient, variables: dict[str, Any], field: str, limit: str
) -> None:
    body = await graphql(RECENT, variables)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == field, error
    assert error["message"].startswith(field), error["message"]
    assert limit in error["message"], error["message"]


async def test_check_in_failing_late_rolls_back_everything(
    graphql: GraphQLClient, services: Services
) -> None:
    # The description is checked after the sequence numbers were taken: the
    # whole transaction must still roll back.
    body = await graphql(
        CHECK_IN, {"input": {"userId": "u1", "intervalSeconds": 60, "description": "d" * 2001}}
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert sum((await _row_counts(services)).values()) == 0


async def test_syntax_and_validation_errors_have_codes(graphql: GraphQLClient) -> None:
    parse = await graphql("{ userStatus(", status=200)
    assert parse["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    invalid = await graphql("{ noSuchField }", status=200)
    assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


NUL_CASES = [
    pytest.param(ADD, _activity(userId="u\x001"), "input.userId", id="user-id"),
    pytest.param(ADD, _activity(description="a\x00b"), "input.description", id="description"),
    pytest.param(ADD, _activity(metadata={"k": "a\x00"}), "input.metadata", id="metadata-value"),
    pytest.param(ADD, _activity(metadata={"k\x00": 1}), "input.metadata", id="metadata-key"),
]


@pytest.mark.parametrize(("query", "variables", "field"), NUL_CASES)
async def test_nul_characters_are_refused_on_every_backend(
    graphql: GraphQLClient, services: Services, query: str, variables: dict[str, Any], field: str
) -> None:
    # PostgreSQL cannot store NUL in text or JSONB; refuse it everywhere alike.
    body = await graphql(query, variables)
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert "NUL" in error["message"]
    assert sum((await _row_counts(services)).values()) == 0
    status = await graphql(
        "query($u: String!) { userStatus(userId: $u) { version } }", {"u": "a\x00"}
    )
    assert status["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_out_of_range_cursor_is_bad_input_when_the_database_answers(
    graphql: GraphQLClient,
) -> None:
    # Past the store's window (100 activities) the page is read from the
    # database, where an id of 2^63 would overflow a 64-bit integer.
    for _ in range(101):
        await graphql.data(ADD, _activity())
    body = await graphql(
        RECENT, {"u": "u1", "first": 100, "after": _cursor("2026-01-01T00:00:00+00:00", 2**63)}
    )
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error


async def test_a_4301_digit_integer_literal_in_metadata_is_refused_by_its_range(
    graphql: GraphQLClient, services: Services
) -> None:
    huge = "9" * 4301
    literal = '{userId: "u1", type: "note", metadata: {n: ' + huge + "}}"
    query = "mutation { addActivity(input: " + literal + ") { id } }"
    body = await graphql(query)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert "integers from -9007199254740991 to 9007199254740991" in error["message"], error
    assert (await _row_counts(services))["activities"] == 0


async def test_a_negative_expected_version_is_bad_input(graphql: GraphQLClient) -> None:
    body = await graphql(UPDATE, {"input": {"userId": "u1", "expectedVersion": -1}})
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.expectedVersion"}


async def test_a_lone_surrogate_in_operation_name_is_a_bad_request(
    graphql: GraphQLClient,
) -> None:
    response = await graphql.http.post(
        "/graphql",
        content=b'{"query": "{ __typename }", "operationName": "\\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "operationName must be valid Unicode" in response.text


async def test_a_last_check_in_within_the_clock_skew_is_accepted(graphql: GraphQLClient) -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    body = await graphql(UPDATE, {"input": {"userId": "c7", "lastCheckIn": soon}})
    assert body == {"data": {"updateUserStatus": {"version": 1}}}, body
