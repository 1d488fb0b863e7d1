"""Mutation root. Each mutation is one unit of work (:meth:`sync.Writer.transaction`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from db import activities, checkins, outbox, statuses

from .context import Context
from .errors import BadUserInput, user_input
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
async def _write(info: Info) -> AsyncIterator[AsyncSession]:
    """The mutation's unit of work; invalid input anywhere in it is ``BAD_USER_INPUT``."""
    with user_input("input"):
        async with info.context.writer.transaction() as session:
            yield session


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=[Authorize(WRITERS)], description="Add an activity to a user's feed."
    )
    async def add_activity(self, info: Info, input: AddActivityInput) -> Activity:
        async with _write(info) as session:
            row = await activities.add(
                session,
                user_id=input.user_id,
                type=input.type,
                description=input.description,
                timestamp=input.timestamp,
                metadata=_metadata(input.metadata),
            )
            # Built inside the unit of work, which still commits and waits on return.
            return Activity.from_payload(outbox.activity_payload(row))

    @strawberry.mutation(extensions=[Authorize(WRITERS)], description=_UPDATE_STATUS)
    async def update_user_status(self, info: Info, input: UpdateUserStatusInput) -> UserStatus:
        changes = set_fields(input, _STATUS_FIELDS)
        if "alert_level" in changes and changes["alert_level"] is None:
            raise BadUserInput("input.alertLevel", "cannot be null; use NONE to clear an alert")
        async with _write(info) as session:
            row = await statuses.update(session, user_id=input.user_id, changes=changes)
            return UserStatus.from_payload(outbox.status_payload(row))

    @strawberry.mutation(extensions=[Authorize(OWN_USER_INPUT)], description=_RECORD_CHECK_IN)
    async def record_check_in(self, info: Info, input: RecordCheckInInput) -> CheckInResult:
        async with _write(info) as session:
            activity, status = await checkins.record(
                session,
                user_id=input.user_id,
                interval_seconds=input.interval_seconds,
                at=input.timestamp,
                description=input.description,
                metadata=_metadata(input.metadata),
            )
            return CheckInResult(
                activity=Activity.from_payload(outbox.activity_payload(activity)),
                status=UserStatus.from_payload(outbox.status_payload(status)),
            )
