"""Missed check-ins escalate by themselves: on time, once, and like any other change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fastapi import FastAPI

from db import AlertLevel, escalations, utcnow
from db.migrate import upgrade
from gql import Settings, create_app
from gql.context import Services

from .conftest import GraphQLClient, websocket
from .helpers import TRANSPORT_WS, Protocol, wait_subscribed
from .helpers.escalation import (
    ALERT_DELAY,
    POLICY,
    escalation_types,
    outbox_seqs,
    seconds,
    status_of,
    wait_level,
)

CHECK_IN = """mutation($u: String!, $s: Int!) {
  recordCheckIn(input: {userId: $u, intervalSeconds: $s}) { status { nextDue version } }
}"""
UPDATE = """mutation($u: String!, $due: DateTime!) {
  updateUserStatus(input: {userId: $u, nextDue: $due}) { version }
}"""
WATCH = """subscription($u: String!) {
  activityAdded(userId: $u) { seq type metadata }
}"""
WATCH_STATUS = """subscription($u: String!) {
  userStatusChanged(userId: $u) { seq alertLevel alertTriggeredAt }
}"""


def with_policy(settings: Settings, policy: str = POLICY) -> Settings:
    return Settings(**{**settings.model_dump(), "escalation_policy": policy})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with a policy of seconds."""
    escalating = with_policy(settings)
    await asyncio.to_thread(upgrade, escalating.database_url)
    application = create_app(escalating)
    async with application.router.lifespan_context(application):
        yield application


async def test_levels_rise_within_a_second_of_their_due_time(
    graphql: GraphQLClient, services: Services
) -> None:
    await graphql.data(CHECK_IN, {"u": "u1", "s": 1})
    warning = await wait_level(services.sessions, "u1", AlertLevel.WARNING)
    alert = await wait_level(services.sessions, "u1", AlertLevel.ALERT)
    assert warning.next_due is not None and warning.alert_triggered_at is not None
    late_warning = seconds(warning.updated_at, warning.next_due)
    late_alert = seconds(alert.updated_at, warning.next_due) - ALERT_DELAY
    print(f"\nWARNING committed {late_warning:.3f} s, ALERT {late_alert:.3f} s after due")
    assert 0 <= late_warning < 1.0
    assert 0 <= late_alert < 1.0
    assert alert.alert_triggered_at == warning.alert_triggered_at
    assert await escalation_types(services.sessions, "u1") == [
        ("missed_check_in", "WARNING"),
        ("alert_triggered", "ALERT"),
    ]
    assert await outbox_seqs(services.sessions, "u1") == [1, 2, 3, 4, 5, 6]


async def test_a_next_due_in_the_past_escalates_at_once(
    graphql: GraphQLClient, services: Services
) -> None:
    due = (utcnow() - timedelta(hours=1)).isoformat()
    written = utcnow()
    await graphql.data(UPDATE, {"u": "u1", "due": due})
    alert = await wait_level(services.sessions, "u1", AlertLevel.ALERT, timeout=5)
    print(
        f"\nnextDue an hour ago: ALERT committed {seconds(alert.updated_at, written):.3f} s later"
    )
    assert seconds(alert.updated_at, written) < 1.0
    # One step to the level reached, one activity per level: not a flood.
    assert alert.version == 2
    assert await escalation_types(services.sessions, "u1") == [
        ("missed_check_in", "WARNING"),
        ("alert_triggered", "ALERT"),
    ]


async def test_a_check_in_before_the_deadline_keeps_the_level(
    graphql: GraphQLClient, services: Services
) -> None:
    await graphql.data(CHECK_IN, {"u": "u1", "s": 1})
    warning = await wait_level(services.sessions, "u1", AlertLevel.WARNING)
    await graphql.data(CHECK_IN, {"u": "u1", "s": 3600})
    status = await status_of(services.sessions, "u1")
    assert status is not None and status.alert_level is AlertLevel.NONE
    assert status.alert_triggered_at is None
    # The old due time's ALERT step (2 s after it) is no longer due.
    assert warning.next_due is not None
    later = warning.next_due + timedelta(seconds=ALERT_DELAY + 1)
    async with services.sessions() as session:
        policy = services.settings.escalation_policy
        assert await escalations.due(session, policy=policy, now=later, limit=10) == []
    assert await escalation_types(services.sessions, "u1") == [("missed_check_in", "WARNING")]


async def _collect(proto: Protocol, want: dict[str, int]) -> dict[str, list[dict[str, object]]]:
    got: dict[str, list[dict[str, object]]] = {op: [] for op in want}
    while any(len(got[op]) < count for op, count in want.items()):
        message = await proto.receive(timeout=10)
        assert message["type"] == "next", message
        data = message["payload"]["data"]
        got[message["id"]].append(next(iter(data.values())))
    return got


async def test_subscribers_see_the_escalation_with_consecutive_seqs(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    await graphql.data(UPDATE, {"u": "u1", "due": (utcnow() + timedelta(days=1)).isoformat()})
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", WATCH, {"u": "u1"})
        await proto.subscribe("s", WATCH_STATUS, {"u": "u1"})
        await wait_subscribed(app, 2)
        await graphql.data(CHECK_IN, {"u": "u1", "s": 1})
        # Status: the current one, the check-in's, WARNING, ALERT; activities: 3.
        got = await _collect(proto, {"a": 3, "s": 4})
    activities, changes = got["a"], got["s"][1:]
    assert [a["type"] for a in activities] == ["check_in", "missed_check_in", "alert_triggered"]
    assert [s["alertLevel"] for s in changes] == ["NONE", "WARNING", "ALERT"]
    seqs = sorted(int(str(event["seq"])) for event in activities + changes)
    assert seqs == list(range(seqs[0], seqs[0] + 6))
    metadata = activities[2]["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["level"] == "ALERT" and metadata["overdueSeconds"] >= ALERT_DELAY
    assert changes[1]["alertTriggeredAt"] is not None


async def test_a_next_due_at_the_end_of_time_is_never_due(database_url: str) -> None:
    # 9999-12-31 plus a delay is past what a datetime holds: never due, not an error.
    from datetime import UTC, datetime

    from db import create_engine, create_session_factory, statuses

    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        sessions = create_session_factory(engine)
        end = datetime(9999, 12, 31, 23, 59, 50, tzinfo=UTC)
        async with sessions.begin() as session:
            await statuses.update(session, user_id="u", changes={"next_due": end})
        policy = escalations.parse_policy("WARNING:0,ALERT:900")
        async with sessions() as session:
            assert await escalations.next_deadline(session, policy=policy) == end
        async with sessions.begin() as session:
            await statuses.update(session, user_id="u", changes={"alert_level": "WARNING"})
        async with sessions() as session:
            assert await escalations.next_deadline(session, policy=policy) is None
    finally:
        await engine.dispose()
