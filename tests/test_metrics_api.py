"""Metrics of the GraphQL surface: delivery freshness, subscriptions, sockets, HTTP operations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete

from db.models import OutboxEntry
from gql import Settings
from gql.context import Services
from gql.metrics import SUBSCRIPTION_FIELDS
from gql.schema import create_schema

from .conftest import GraphQLClient, websocket
from .helpers import TRANSPORT_WS, Protocol

ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq } }"
UPDATE = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { seq } }"
ACTIVITY_ADDED = (
    "subscription($u: String!, $after: Int) { activityAdded(userId: $u, after: $after) { seq } }"
)
STATUS_CHANGED = "subscription($u: String!) { userStatusChanged(userId: $u) { seq } }"
FEED = "subscription { activityFeedAdded { seq } }"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """One backend: these metrics do not depend on it."""
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        relay_poll_interval=0.05,
        escalation_policy="",  # type: ignore[arg-type]
    )


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} not exposed"
    return samples[key]


async def _add(graphql: GraphQLClient, user: str = "u1") -> int:
    seq: int = (await graphql.data(ADD, {"input": {"userId": user, "type": "note"}}))[
        "addActivity"
    ]["seq"]
    return seq


async def _eventually(check: Any, client: httpx.AsyncClient) -> Samples:
    """Scrape until ``check(samples)`` holds (a socket's end is counted after it closes)."""
    for _ in range(100):
        samples = await scrape(client)
        if check(samples):
            return samples
        await asyncio.sleep(0.02)
    raise AssertionError(f"never held; last scrape: {samples}")


def test_the_field_label_names_are_the_schema_subscription_fields() -> None:
    schema = create_schema()
    subscription = schema.get_type_by_name("Subscription")
    assert subscription is not None
    names = {
        field.graphql_name or schema.config.name_converter.apply_naming_config(field.name)
        for field in subscription.fields
    }  # type: ignore[union-attr]
    assert names == set(SUBSCRIPTION_FIELDS)


async def test_every_series_exists_at_zero_from_the_start(client: httpx.AsyncClient) -> None:
    samples = await scrape(client)
    for field in SUBSCRIPTION_FIELDS:
        assert value(samples, "checkin_events_delivered_total", field=field) == 0
        assert value(samples, "checkin_delivery_latency_seconds_count", field=field) == 0
        assert value(samples, "checkin_active_subscriptions", field=field) == 0
        assert value(samples, "checkin_subscription_resumes_total", field=field) == 0
        assert value(samples, "checkin_cursor_expired_total", field=field) == 0
    assert value(samples, "checkin_websocket_connections") == 0
    # Bounded: 4 fields, 4 operation types x 3 outcomes, and nothing per user.
    series = {name for name, _ in samples}
    assert not any("user" in label for _, labels in samples for label, _ in labels)
    assert "checkin_http_operations_total" in series


async def test_deliveries_are_counted_and_timed_from_commit_to_the_socket(
    app: FastAPI, client: httpx.AsyncClient, graphql: GraphQLClient
) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1", "after": None})
        await proto.subscribe("s", STATUS_CHANGED, {"u": "u1"})
        await proto.subscribe("f", FEED, {})
        during = await _eventually(
            lambda s: value(s, "checkin_active_subscriptions", field="activityFeedAdded") == 1,
            client,
        )
        assert value(during, "checkin_websocket_connections") == 1
        assert value(during, "checkin_active_subscriptions", field="activityAdded") == 1
        assert value(during, "checkin_active_subscriptions", field="userStatusChanged") == 1
        for _ in range(3):
            await _add(graphql)
        for _ in range(3):
            await proto.next_data("a")
            await proto.next_data("f")
        await graphql.data(UPDATE, {"input": {"userId": "u1", "alertLevel": "WARNING"}})
        await proto.next_data("s")
        # Counted when the generator resumes after the send: the next event, or the stop.
        await _add(graphql)
        await proto.next_data("a")
        await proto.next_data("f")
        samples = await _eventually(
            lambda s: value(s, "checkin_events_delivered_total", field="activityAdded") >= 3,
            client,
        )
    assert value(samples, "checkin_events_delivered_total", field="activityAdded") >= 3
    assert value(samples, "checkin_events_delivered_total", field="activityFeedAdded") >= 3
    assert value(samples, "checkin_events_delivered_total", field="userStatusChanged") >= 1
    assert value(samples, "checkin_delivery_latency_seconds_count", field="activityAdded") == (
        value(samples, "checkin_events_delivered_total", field="activityAdded")
    )
    # Freshness: in-process, commit to socket is well under the 5 s bucket, and not negative.
    count = value(samples, "checkin_delivery_latency_seconds_count", field="activityAdded")
    within = value(
        samples, "checkin_delivery_latency_seconds_bucket", field="activityAdded", le="5.0"
    )
    assert within == count
    assert value(samples, "checkin_delivery_latency_seconds_sum", field="activityAdded") >= 0
    # Nothing delivered for a field nobody subscribed to.
    assert value(samples, "checkin_events_delivered_total", field="userStatusFeed") == 0
    after = await _eventually(lambda s: value(s, "checkin_websocket_connections") == 0, client)
    for field in SUBSCRIPTION_FIELDS:
        assert value(after, "checkin_active_subscriptions", field=field) == 0


async def test_a_status_snapshot_is_not_counted_as_a_delivered_change(
    app: FastAPI, client: httpx.AsyncClient, graphql: GraphQLClient
) -> None:
    await graphql.data(UPDATE, {"input": {"userId": "u1", "alertLevel": "WARNING"}})
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("s", STATUS_CHANGED, {"u": "u1"})
        assert (await proto.next_data("s"))["userStatusChanged"]["seq"] == 1
        await proto.stop("s")
        await _eventually(
            lambda s: value(s, "checkin_active_subscriptions", field="userStatusChanged") == 0,
            client,
        )
    samples = await scrape(client)
    assert value(samples, "checkin_events_delivered_total", field="userStatusChanged") == 0


async def test_resumes_and_cursor_expired_resets_are_counted(
    app: FastAPI, client: httpx.AsyncClient, graphql: GraphQLClient, services: Services
) -> None:
    for _ in range(3):
        await _add(graphql)
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1", "after": 1})
        assert (await proto.next_data("a"))["activityAdded"]["seq"] == 2
        # Pruned history: resuming from before it is refused.
        async with services.sessions.begin() as session:
            await session.execute(delete(OutboxEntry).where(OutboxEntry.seq <= 2))
        await proto.subscribe("b", ACTIVITY_ADDED, {"u": "u1", "after": 0})
        message = await proto.receive()
        while message.get("id") != "b":
            message = await proto.receive()
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "CURSOR_EXPIRED"
    samples = await scrape(client)
    assert value(samples, "checkin_subscription_resumes_total", field="activityAdded") == 2
    assert value(samples, "checkin_cursor_expired_total", field="activityAdded") == 1
    assert value(samples, "checkin_cursor_expired_total", field="userStatusChanged") == 0


async def test_http_operations_are_counted_by_type_and_outcome(
    client: httpx.AsyncClient, graphql: GraphQLClient
) -> None:
    await graphql.data("{ __typename }")
    await _add(graphql)
    # Executed with an error (bad input), unparsable, and a subscription over HTTP.
    body = await graphql(ADD, {"input": {"userId": "", "type": "note"}})
    assert body["errors"]
    assert (await graphql("{ nope"))["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    response = await client.post("/graphql", json={"query": FEED})
    assert response.status_code == 400
    samples = await scrape(client)
    ops = "checkin_http_operations_total"
    assert value(samples, ops, operation_type="query", outcome="ok") == 1
    assert value(samples, ops, operation_type="mutation", outcome="ok") == 1
    assert value(samples, ops, operation_type="mutation", outcome="error") == 1
    assert value(samples, ops, operation_type="unknown", outcome="refused") == 1
    assert value(samples, ops, operation_type="subscription", outcome="refused") == 1
    duration = "checkin_http_operation_duration_seconds_count"
    assert value(samples, duration, operation_type="mutation") == 2
    assert value(samples, duration, operation_type="query") == 1
