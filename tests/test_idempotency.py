"""Exactly-once mutations (idempotency keys) and optimistic concurrency (expectedVersion)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from db import idempotency
from db.models import Activity, IdempotencyKey, OutboxEntry
from gql.context import Services

from .conftest import GraphQLClient, secure, token

ADD = """mutation($input: AddActivityInput!) {
  addActivity(input: $input) { id seq description }
}"""
CHECK_IN = """mutation($input: RecordCheckInInput!) {
  recordCheckIn(input: $input) { activity { id seq } status { version seq } }
}"""
UPDATE = """mutation($input: UpdateUserStatusInput!) {
  updateUserStatus(input: $input) { version alertLevel }
}"""
ALICE = token("alice")
SERVICE = token("backend", role="service")


@pytest.fixture
def settings(settings: Any) -> Any:
    return secure(settings)


def _expired() -> datetime:
    return datetime.now(UTC) - idempotency.KEY_TTL - timedelta(seconds=1)


async def _count(services: Services, model: Any) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_retried_write_returns_the_first_result_and_writes_nothing(
    graphql: GraphQLClient, services: Services
) -> None:
    writer = graphql.as_(SERVICE)
    variables = {"input": {"userId": "u1", "type": "note", "idempotencyKey": "k-1"}}
    first = await writer.data(ADD, variables)
    again = await writer.data(ADD, variables)
    assert again == first
    assert await _count(services, Activity) == 1
    assert await _count(services, OutboxEntry) == 1


async def test_a_check_in_retried_is_recorded_once(
    graphql: GraphQLClient, services: Services
) -> None:
    alice = graphql.as_(ALICE)
    variables = {"input": {"userId": "alice", "intervalSeconds": 60, "idempotencyKey": "c"}}
    first = await alice.data(CHECK_IN, variables)
    assert await alice.data(CHECK_IN, variables) == first
    assert first["recordCheckIn"]["status"]["version"] == 1
    assert await _count(services, OutboxEntry) == 2


async def test_concurrent_retries_make_one_write(
    graphql: GraphQLClient, services: Services
) -> None:
    writer = graphql.as_(SERVICE)
    variables = {"input": {"userId": "u1", "type": "note", "idempotencyKey": "burst"}}
    results = await asyncio.gather(*(writer.data(ADD, variables) for _ in range(8)))
    assert all(result == results[0] for result in results)
    assert await _count(services, Activity) == 1


async def test_a_key_reused_for_another_input_is_refused(
    graphql: GraphQLClient, services: Services
) -> None:
    writer = graphql.as_(SERVICE)
    await writer.data(ADD, {"input": {"userId": "u1", "type": "note", "idempotencyKey": "k"}})
    for other in (
        {"input": {"userId": "u1", "type": "note", "description": "x", "idempotencyKey": "k"}},
        {"input": {"userId": "u1", "alertLevel": "ALERT", "idempotencyKey": "k"}},
    ):
        body = await writer(ADD if "type" in other["input"] else UPDATE, other)
        [error] = body["errors"]
        assert error["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED", error
    assert await _count(services, OutboxEntry) == 1


async def test_keys_of_different_callers_do_not_collide(
    graphql: GraphQLClient, services: Services
) -> None:
    variables = {"input": {"userId": "alice", "intervalSeconds": 60, "idempotencyKey": "same"}}
    await graphql.as_(ALICE).data(CHECK_IN, variables)
    second = await graphql.as_(SERVICE).data(CHECK_IN, variables)
    assert second["recordCheckIn"]["status"]["version"] == 2


@pytest.mark.parametrize("key", ["", "k" * 129])
async def test_a_key_of_the_wrong_length_is_bad_input(graphql: GraphQLClient, key: str) -> None:
    body = await graphql.as_(SERVICE)(
        ADD, {"input": {"userId": "u1", "type": "note", "idempotencyKey": key}}
    )
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.idempotencyKey"}


async def test_expired_keys_are_claimed_afresh_and_pruned(
    graphql: GraphQLClient, services: Services
) -> None:
    writer = graphql.as_(SERVICE)
    variables = {"input": {"userId": "u1", "type": "note", "idempotencyKey": "old"}}
    await writer.data(ADD, variables)
    async with services.sessions.begin() as session:
        await session.execute(update(IdempotencyKey).values(created_at=_expired()))
    await writer.data(ADD, variables)
    assert await _count(services, Activity) == 2
    async with services.sessions.begin() as session:
        await session.execute(update(IdempotencyKey).values(created_at=_expired()))
    await services.relay.prune()
    assert await _count(services, IdempotencyKey) == 0


async def test_expected_version_guards_status_writes(
    graphql: GraphQLClient, services: Services
) -> None:
    writer = graphql.as_(SERVICE)
    created = await writer.data(
        UPDATE, {"input": {"userId": "u1", "alertLevel": "WARNING", "expectedVersion": 0}}
    )
    assert created["updateUserStatus"]["version"] == 1
    stale = await writer(
        UPDATE, {"input": {"userId": "u1", "alertLevel": "ALERT", "expectedVersion": 0}}
    )
    [error] = stale["errors"]
    assert error["extensions"] == {"code": "VERSION_CONFLICT", "version": 1}
    assert await _count(services, OutboxEntry) == 1
    current = await writer.data(
        UPDATE, {"input": {"userId": "u1", "alertLevel": "ALERT", "expectedVersion": 1}}
    )
    assert current["updateUserStatus"] == {"version": 2, "alertLevel": "ALERT"}
