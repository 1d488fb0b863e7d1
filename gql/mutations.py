"""Mutation root. Each mutation is one unit of work (:meth:`sync.Writer.transaction`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import strawberry
from graphql import GraphQLError

from db import activities, checkins, outbox, statuses
from db.idempotency import IdempotencyKeyReused
from db.payloads import parse_activity, parse_status
from db.statuses import VersionConflict

from .codes import ErrorCode
from .context import Context
from .errors import BadUserInput, user_input
from .idempotency import Once
from .idempotency import claim as idempotent
from .inputs import AddActivityInput, RecordCheckInInput, UpdateUserStatusInput, set_fields
from .permissions import OWN_USER_INPUT, WRITERS, Authorize
from .types import Activity, CheckInResult, UserStatus

__all__ = ["Mutation"]

Info = strawberry.Info[Context, None]

_UPDATE_STATUS = (
    "Create or patch a user's status: omitted fields keep their value, null clears "
    "a nullable field. version goes up by one."
)
_RECORD_CHECK_IN = (
    "In one transaction: add a check_in activity, set lastCheckIn to its time, nextDue "
    "to that time plus intervalSeconds, alertLevel to NONE and alertTriggeredAt to null. "
    "A back-dated check-in (timestamp before lastCheckIn) only adds the activity: it moves "
    "neither lastCheckIn nor nextDue backwards and leaves the alert as it is."
)
_STATUS_FIELDS = frozenset({"last_check_in", "next_due", "alert_level", "alert_triggered_at"})


def _metadata(value: Any) -> Any:
    # JSON null and an omitted field both mean "no metadata".
    return {} if value is None else value


@asynccontextmanager
async def _write(info: Info, operation: str, input: object) -> AsyncIterator[Once]:
    """The mutation's unit of work, with its idempotency key claimed first.

    Invalid input anywhere in it is ``BAD_USER_INPUT``; a reused key is
    ``IDEMPOTENCY_KEY_REUSED`` and a stale ``expectedVersion`` ``VERSION_CONFLICT``.
    """
    try:
        with user_input("input"):
            async with info.context.writer.transaction() as session:
                yield await idempotent(session, info.context.principal, operation, input)
    except IdempotencyKeyReused as exc:
        code = {"code": ErrorCode.IDEMPOTENCY_KEY_REUSED, "field": "input.idempotencyKey"}
        raise GraphQLError(str(exc), extensions=code) from None
    except VersionConflict as exc:
        extensions = {"code": ErrorCode.VERSION_CONFLICT, "version": exc.version}
        raise GraphQLError(str(exc), extensions=extensions) from None


def _check_in_result(result: dict[str, Any]) -> CheckInResult:
    return CheckInResult(
        activity=Activity.from_payload(parse_activity(result["activity"])),
        status=UserStatus.from_payload(parse_status(result["status"])),
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=[Authorize(WRITERS)], description="Add an activity to a user's feed."
    )
    async def add_activity(self, info: Info, input: AddActivityInput) -> Activity:
        async with _write(info, "addActivity", input) as once:
            if (first := once.replay) is not None:
                return Activity.from_payload(parse_activity(first))
            row = await activities.add(
                once.session,
                user_id=input.user_id,
                type=input.type,
                description=input.description,
                timestamp=input.timestamp,
                metadata=_metadata(input.metadata),
            )
            # Built inside the unit of work, which still commits and waits on return.
            payload = outbox.activity_payload(row)
            await once.remember(payload)
            return Activity.from_payload(payload)

    @strawberry.mutation(extensions=[Authorize(WRITERS)], description=_UPDATE_STATUS)
    async def update_user_status(self, info: Info, input: UpdateUserStatusInput) -> UserStatus:
        changes = set_fields(input, _STATUS_FIELDS)
        if "alert_level" in changes and changes["alert_level"] is None:
            raise BadUserInput("input.alertLevel", "cannot be null; use NONE to clear an alert")
        async with _write(info, "updateUserStatus", input) as once:
            if once.replay is not None:
                return UserStatus.from_payload(parse_status(once.replay))
            row = await statuses.update(
                once.session,
                changes=changes,
                expected_version=input.expected_version,
                user_id=input.user_id,
            )
            status = outbox.status_payload(row)
            await once.remember(status)
            return UserStatus.from_payload(status)

    @strawberry.mutation(extensions=[Authorize(OWN_USER_INPUT)], description=_RECORD_CHECK_IN)
    async def record_check_in(self, info: Info, input: RecordCheckInInput) -> CheckInResult:
        async with _write(info, "recordCheckIn", input) as once:
            if once.replay is not None:
                return _check_in_result(once.replay)
            activity, status = await checkins.record(
                once.session,
                user_id=input.user_id,
                interval_seconds=input.interval_seconds,
                at=input.timestamp,
                description=input.description,
                metadata=_metadata(input.metadata),
            )
            result = {
                "activity": outbox.activity_payload(activity),
                "status": outbox.status_payload(status),
            }
            await once.remember(result)
            return _check_in_result(result)
