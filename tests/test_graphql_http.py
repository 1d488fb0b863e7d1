"""Queries and mutations over HTTP, through the app's real lifespan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gql.context import Services

from .conftest import GraphQLClient

CHECK_IN = """
mutation($input: RecordCheckInInput!) {
  recordCheckIn(input: $input) {
    activity { id userId seq type description timestamp metadata }
    status { userId lastCheckIn nextDue alertLevel alertTriggeredAt version updatedAt }
  }
}"""
ADD = """
mutation($input: AddActivityInput!) {
  addActivity(input: $input) { id userId seq type description timestamp metadata }
}"""
UPDATE = """
mutation($input: UpdateUserStatusInput!) {
  updateUserStatus(input: $input) {
    userId lastCheckIn nextDue alertLevel alertTriggeredAt version
  }
}"""
STATUS = "query($u: String!) { userStatus(userId: $u) { alertLevel version lastCheckIn nextDue } }"
RECENT = """
query($u: String!, $first: Int, $after: String, $types: [String!]) {
  recentActivities(userId: $u, first: $first, after: $after, types: $types) {
    edges { cursor node { id seq type timestamp } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def test_record_check_in_writes_activity_and_status(graphql: GraphQLClient) -> None:
    at = "2026-03-01T10:00:00+02:00"
    data = await graphql.data(
        CHECK_IN, {"input": {"userId": "u1", "intervalSeconds": 3600, "timestamp": at}}
    )
    result = data["recordCheckIn"]
    assert result["activity"]["type"] == "check_in"
    assert result["activity"]["timestamp"] == "2026-03-01T08:00:00Z"
    assert result["activity"]["seq"] == 1
    assert result["status"] == {
        "userId": "u1",
        "lastCheckIn": "2026-03-01T08:00:00Z",
        "nextDue": "2026-03-01T09:00:00Z",
        "alertLevel": "NONE",
        "alertTriggeredAt": None,
        "version": 1,
        "updatedAt": result["status"]["updatedAt"],
    }
    read = await graphql.data(STATUS, {"u": "u1"})
    assert read["userStatus"] == {
        "alertLevel": "NONE",
        "version": 1,
        "lastCheckIn": "2026-03-01T08:00:00Z",
        "nextDue": "2026-03-01T09:00:00Z",
    }


async def test_check_in_resets_an_alert(graphql: GraphQLClient) -> None:
    await graphql.data(
        UPDATE,
        {
            "input": {
                "userId": "u1",
                "alertLevel": "ALERT",
                "alertTriggeredAt": "2026-03-01T07:00:00Z",
            }
        },
    )
    data = await graphql.data(CHECK_IN, {"input": {"userId": "u1", "intervalSeconds": 60}})
    status = data["recordCheckIn"]["status"]
    assert status["alertLevel"] == "NONE"
    assert status["alertTriggeredAt"] is None
    assert status["version"] == 2


async def test_user_status_is_null_for_unknown_user(graphql: GraphQLClient) -> None:
    assert (await graphql.data(STATUS, {"u": "nobody"}))["userStatus"] is None


async def test_update_user_status_has_patch_semantics(graphql: GraphQLClient) -> None:
    first = await graphql.data(
        UPDATE,
        {
            "input": {
                "userId": "u1",
                "nextDue": "2026-03-01T09:00:00Z",
                "alertLevel": "WARNING",
            }
        },
    )
    assert first["updateUserStatus"]["version"] == 1
    assert first["updateUserStatus"]["lastCheckIn"] is None
    # Omitted fields keep their value.
    second = await graphql.data(UPDATE, {"input": {"userId": "u1", "alertLevel": "EMERGENCY"}})
    assert second["updateUserStatus"]["nextDue"] == "2026-03-01T09:00:00Z"
    assert second["updateUserStatus"]["alertLevel"] == "EMERGENCY"
    assert second["updateUserStatus"]["version"] == 2
    # An explicit null clears a nullable field.
    third = await graphql.data(UPDATE, {"input": {"userId": "u1", "nextDue": None}})
    assert third["updateUserStatus"]["nextDue"] is None
    assert third["updateUserStatus"]["alertLevel"] == "EMERGENCY"
    assert third["updateUserStatus"]["version"] == 3


async def test_recent_activities_paginates_newest_first(graphql: GraphQLClient) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(7):
        stamp = (base + timedelta(minutes=i)).isoformat()
        await graphql.data(
            ADD,
            {
                "input": {
                    "userId": "u1",
                    "type": "note" if i % 2 else "check_in",
                    "timestamp": stamp,
                }
            },
        )
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        page = (await graphql.data(RECENT, {"u": "u1", "first": 3, "after": after}))[
            "recentActivities"
        ]
        seen += [edge["node"]["seq"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    assert pages == 3
    notes = (await graphql.data(RECENT, {"u": "u1", "types": ["note"]}))["recentActivities"]
    assert [e["node"]["type"] for e in notes["edges"]] == ["note"] * 3


async def test_cursor_is_stable_under_concurrent_inserts(graphql: GraphQLClient) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(4):
        stamp = (base + timedelta(minutes=i)).isoformat()
        await graphql.data(ADD, {"input": {"userId": "u1", "type": "note", "timestamp": stamp}})
    page = (await graphql.data(RECENT, {"u": "u1", "first": 2}))["recentActivities"]
    assert [e["node"]["seq"] for e in page["edges"]] == [4, 3]
    # Newer activities arrive between page requests; the next page is unaffected.
    for _ in range(3):
        await graphql.data(ADD, {"input": {"userId": "u1", "type": "note"}})
    rest = (
        await graphql.data(RECENT, {"u": "u1", "first": 10, "after": page["pageInfo"]["endCursor"]})
    )["recentActivities"]
    assert [e["node"]["seq"] for e in rest["edges"]] == [2, 1]


async def test_activity_feed_spans_users(graphql: GraphQLClient) -> None:
    for user in ("a", "b", "c"):
        await graphql.data(ADD, {"input": {"userId": user, "type": "note"}})
    data = await graphql.data(
        "{ activityFeed(first: 2) { edges { node { userId } } pageInfo { hasNextPage } } }"
    )
    assert [e["node"]["userId"] for e in data["activityFeed"]["edges"]] == ["c", "b"]
    assert data["activityFeed"]["pageInfo"]["hasNextPage"] is True


async def test_reads_come_from_the_store_and_fall_back_to_the_database(
    graphql: GraphQLClient, services: Services
) -> None:
    await graphql.data(CHECK_IN, {"input": {"userId": "u1", "intervalSeconds": 60}})
    page = await services.reader.recent_activities("u1", first=5, after=None, types=None)
    assert page.source == "store"
    assert services.store is not None
    await services.store.forget()
    # An empty store is not an answer: the reader goes to the database, then primes the store.
    assert (await graphql.data(STATUS, {"u": "u1"}))["userStatus"]["version"] == 1
    state = await services.store.get("u1")
    assert state is not None and state.primed and state.seq == 2


async def test_metadata_round_trips(graphql: GraphQLClient) -> None:
    meta = {"battery": 0.8, "place": {"lat": 1.5, "tags": ["home"]}}
    added = await graphql.data(
        ADD, {"input": {"userId": "u1", "type": "note", "description": "hi", "metadata": meta}}
    )
    assert added["addActivity"]["metadata"] == meta
    assert added["addActivity"]["description"] == "hi"
