"""The care-team overview: userStatuses (urgency order, filters, keyset pages), userStatusFeed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from broadcaster import Event
from fastapi import FastAPI

from sync.subscribers import Subscriber

from .conftest import GraphQLClient, websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol, wait_subscribed

UPDATE = """mutation($input: UpdateUserStatusInput!) {
  updateUserStatus(input: $input) { version }
}"""
STATUSES = """query($levels: [AlertLevel!], $overdue: Boolean, $first: Int, $after: String) {
  userStatuses(alertLevels: $levels, overdue: $overdue, first: $first, after: $after) {
    edges { cursor node { userId alertLevel nextDue } }
    pageInfo { hasNextPage endCursor }
  }
}"""
STATUS_FEED = "subscription { userStatusFeed { userId alertLevel version } }"


def _at(minutes: int | None, base: datetime | None = None) -> str | None:
    # From the time of the writes, not of collection: the suite may run for minutes first.
    if minutes is None:
        return None
    return ((base or datetime.now(UTC)) + timedelta(minutes=minutes)).isoformat()


# user id, level, nextDue in minutes from now (None: none); listed in the expected order.
PEOPLE = [
    ("e1", "EMERGENCY", -30),
    ("e2", "EMERGENCY", None),
    ("a1", "ALERT", -90),
    ("a2", "ALERT", -20),
    ("a3", "ALERT", -20),
    ("w1", "WARNING", -1),
    ("n1", "NONE", 5),
    ("n2", "NONE", 60),
    ("n0", "NONE", None),
    ("n3", "NONE", None),
]


async def _set(
    graphql: GraphQLClient, user: str, level: str, due: int | None, base: datetime | None = None
) -> None:
    status = {"userId": user, "alertLevel": level, "nextDue": _at(due, base)}
    await graphql.data(UPDATE, {"input": status})


async def _people(graphql: GraphQLClient) -> None:
    # Written in reverse, so that write order is not the answer.
    base = datetime.now(UTC)  # one instant, so that equal offsets tie
    for user, level, due in reversed(PEOPLE):
        await _set(graphql, user, level, due, base)


async def _page(graphql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    page: dict[str, Any] = (await graphql.data(STATUSES, variables))["userStatuses"]
    return page


def _users(page: dict[str, Any]) -> list[str]:
    return [edge["node"]["userId"] for edge in page["edges"]]


async def test_most_urgent_first(graphql: GraphQLClient) -> None:
    await _people(graphql)
    page = await _page(graphql)
    assert _users(page) == [user for user, _, _ in PEOPLE]
    assert page["pageInfo"]["hasNextPage"] is False


async def test_filters(graphql: GraphQLClient) -> None:
    await _people(graphql)
    assert _users(await _page(graphql, levels=["ALERT", "EMERGENCY"])) == [
        "e1", "e2", "a1", "a2", "a3"
    ]  # fmt: skip
    assert _users(await _page(graphql, overdue=True)) == ["e1", "a1", "a2", "a3", "w1"]
    assert _users(await _page(graphql, overdue=False)) == ["e2", "n1", "n2", "n0", "n3"]
    assert _users(await _page(graphql, levels=["NONE"], overdue=False, first=2)) == ["n1", "n2"]
    assert _users(await _page(graphql, levels=[])) == []


async def test_pages_cover_every_user_once(graphql: GraphQLClient) -> None:
    await _people(graphql)
    seen: list[str] = []
    after = None
    while True:
        page = await _page(graphql, first=3, after=after)
        seen += _users(page)
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    assert seen == [user for user, _, _ in PEOPLE]


async def test_pages_are_stable_under_concurrent_changes(graphql: GraphQLClient) -> None:
    await _people(graphql)
    first = await _page(graphql, first=4)
    assert _users(first) == ["e1", "e2", "a1", "a2"]
    # Between pages: a new user lands before the cursor, one already served
    # moves behind it, and unchanged users shift by offset but not by key.
    await _set(graphql, "new-emergency", "EMERGENCY", -5)
    await _set(graphql, "e2", "NONE", None)
    await _set(graphql, "gone-quiet", "NONE", 1)
    rest = await _page(graphql, first=100, after=first["pageInfo"]["endCursor"])
    # Nobody unchanged is skipped or repeated; e2 moved behind the cursor, so it
    # is served again at its new place (documented: changed users move).
    assert _users(rest) == ["a3", "w1", "gone-quiet", "n1", "n2", "e2", "n0", "n3"]


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 0}, "first"),
        ({"first": 101}, "first"),
        ({"after": "bm90LWEtY3Vyc29y"}, "after"),
        ({"after": "YTE6MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHwx"}, "after"),  # an activity cursor
    ],
)
async def test_bad_input(graphql: GraphQLClient, variables: dict[str, Any], field: str) -> None:
    body = await graphql(STATUSES, variables)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert field in body["errors"][0]["message"]


@pytest.mark.parametrize("protocol_name", [TRANSPORT_WS, LEGACY_WS])
async def test_status_feed_carries_every_user(
    app: FastAPI, graphql: GraphQLClient, protocol_name: str
) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await proto.subscribe("f", STATUS_FEED, {})
        await wait_subscribed(app, 1)
        await _set(graphql, "a", "WARNING", 1)
        await _set(graphql, "b", "ALERT", 1)
        await _set(graphql, "a", "NONE", 1)
        got = [(await proto.next_data("f"))["userStatusFeed"] for _ in range(3)]
    assert got == [
        {"userId": "a", "alertLevel": "WARNING", "version": 1},
        {"userId": "b", "alertLevel": "ALERT", "version": 1},
        {"userId": "a", "alertLevel": "NONE", "version": 2},
    ]


def _user(event: Event) -> str:
    return event.message.split(":")[0]


async def test_a_lagging_feed_keeps_the_newest_status_of_every_user() -> None:
    users, changes, max_queue = 50, 20, 8
    inbox = Subscriber("feed", max_queue, conflate_key=_user)
    for change in range(changes):
        for user in range(users):
            inbox.push(Event("feed", f"u{user}:{change}"))
    newest: dict[str, int] = {}
    while inbox.queued:
        user, change = (await inbox.get()).message.split(":")
        assert int(change) > newest.get(user, -1)  # each user's changes stay in order
        newest[user] = int(change)
    assert newest == {f"u{user}": changes - 1 for user in range(users)}
    # The bound: max_queue plus one queued event per distinct user.
    assert inbox.dropped >= users * changes - (max_queue + users)


async def test_keyed_conflation_keeps_every_event_of_a_reader_that_keeps_up() -> None:
    inbox = Subscriber("feed", 2, conflate_key=_user)
    for change in range(5):
        inbox.push(Event("feed", f"u:{change}"))
        assert (await inbox.get()).message == f"u:{change}"
    assert inbox.dropped == 0
