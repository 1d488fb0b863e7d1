"""The cost model (gql/cost.py): fields weigh what they may return, on coerced variables."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from graphql import OperationDefinitionNode, parse

from gql import Settings, create_schema
from gql.cost import coerced_variables, operation_cost

from .conftest import GraphQLClient

METADATA_PAGE = (
    'recentActivities(userId: "u1", first: {first}) {{ edges {{ node {{ metadata }} }} }}'
)
# Issue 12, finding 3: legal before (cost 4,516), it returned 25.6 MB.
AMPLIFICATION = (
    "{ " + " ".join(f"a{i}: " + METADATA_PAGE.format(first=100) for i in range(15)) + " }"
)
ACTIVITY = "id userId seq type description timestamp metadata"
STATUS = "userId lastCheckIn nextDue alertLevel alertTriggeredAt version seq updatedAt"
PAGE = f"edges {{ cursor node {{ {ACTIVITY} }} }} pageInfo {{ hasNextPage endCursor }}"
# What clients send: the README's examples, tests/e2e/*.mjs, and a dashboard's feed pages.
ORDINARY = {
    "readme-check-in": 'mutation { recordCheckIn(input: {userId: "u1", intervalSeconds: 3600}) '
    "{ status { alertLevel nextDue } } }",
    "readme-status": '{ userStatus(userId:"u1"){ alertLevel } }',
    "readme-add": 'mutation { addActivity(input: {userId: "u1", type: "note", '
    'description: "Went for a walk", metadata: {steps: 4200}}) { id seq timestamp } }',
    "readme-subscription": 'subscription { userStatusChanged(userId: "u1") '
    "{ alertLevel nextDue version seq } }",
    "readme-resume": "subscription($u: String!, $after: Int) { activityAdded(userId: $u, "
    "after: $after) { seq type description timestamp } }",
    "e2e-activity-added": f'subscription {{ activityAdded(userId: "u1") {{ {ACTIVITY} }} }}',
    "e2e-check-in": "mutation CheckIn($input: RecordCheckInInput!) { recordCheckIn(input: $input) "
    f"{{ activity {{ {ACTIVITY} }} status {{ {STATUS} }} }} }}",
    "e2e-status": "query Status($userId: String!) "
    f"{{ userStatus(userId: $userId) {{ {STATUS} }} }}",
    "dashboard-20": f'{{ recentActivities(userId: "u1") {{ {PAGE} }} }}',
    "dashboard-100": f'{{ recentActivities(userId: "u1", first: 100) {{ {PAGE} }} }}',
    "dashboard-status-and-feed": f'{{ userStatus(userId: "u1") {{ {STATUS} }} '
    f'recentActivities(userId: "u1", first: 50) {{ {PAGE} }} }}',
    "admin-feed": f"{{ activityFeed(first: 100) {{ {PAGE} }} }}",
}
VARIABLES = {"u": "u1", "userId": "u1", "input": {"userId": "u1", "intervalSeconds": 60}}


def cost(document: str, variables: dict[str, Any] | None = None) -> int:
    schema = create_schema()._schema
    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    coerced = coerced_variables(schema, operation, variables or {})
    assert coerced is not None
    return operation_cost(schema, operation, {}, coerced)


@pytest.mark.parametrize("document", ORDINARY.values(), ids=ORDINARY.keys())
def test_ordinary_operations_stay_under_the_default_limit(document: str) -> None:
    assert cost(document, VARIABLES) <= Settings.model_construct().max_query_cost


def test_metadata_weighs_its_16_kib_limit() -> None:
    ids = cost(METADATA_PAGE.format(first=10).replace("metadata", "id").join("{}"))
    metadata = cost(METADATA_PAGE.format(first=10).join("{}"))
    assert (ids, metadata) == (1 + 10 * 3, 1 + 10 * 18)
    assert cost(AMPLIFICATION) == 15 * (1 + 100 * 18)


async def test_the_amplification_query_is_refused_before_it_runs(graphql: GraphQLClient) -> None:
    body = await graphql(AMPLIFICATION)
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "costs 27015, over MAX_QUERY_COST=5000" in error["message"], error


# Three metadata pages of `first: $n`: 3 x (1 + 100 x 18) = 5403 when n is 100.
PAGES_OF_N = (
    "query($n: Int) { "
    + " ".join(f"p{i}: " + METADATA_PAGE.format(first="$n") for i in range(3))
    + " }"
)


@pytest.mark.parametrize(
    ("document", "variables_json"),
    [
        (PAGES_OF_N, '{"n": 100}'),
        (PAGES_OF_N, '{"n": 100.0}'),
        (PAGES_OF_N, '{"n": 1e2}'),
        (PAGES_OF_N, '{"n": 100.000000000000001}'),
        (PAGES_OF_N.replace("$n: Int", "$n: Int = 100"), "{}"),
        (PAGES_OF_N.replace("$n: Int", "$n: Int! = 100"), "{}"),
    ],
    ids=["int", "float", "exponent", "float-rounding-to-int", "default", "non-null-default"],
)
async def test_every_encoding_of_first_is_counted(
    client: httpx.AsyncClient, document: str, variables_json: str
) -> None:
    # Finding 4: the value GraphQL coerces to Int 100 is what the cost counts.
    content = f'{{"query": {json.dumps(document)}, "variables": {variables_json}}}'
    response = await client.post(
        "/graphql", content=content, headers={"content-type": "application/json"}
    )
    body = response.json()
    assert body["data"] is None, body
    assert "costs 5403, over MAX_QUERY_COST=5000" in body["errors"][0]["message"], body


@pytest.mark.parametrize("value", [100.5, "100", 2**31, True, [100]])
async def test_invalid_variables_stay_bad_user_input(graphql: GraphQLClient, value: Any) -> None:
    body = await graphql(PAGES_OF_N, {"n": value})
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body
