"""GraphQL input types. Omitted fields are ``UNSET``, distinct from an explicit null."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from .types import AlertLevel

IDEMPOTENCY_KEY_DESCRIPTION = (
    "1-128 characters. The same key from the same caller within 24 hours returns the first "
    "result and writes nothing; with a different input it is IDEMPOTENCY_KEY_REUSED."
)

__all__ = ["AddActivityInput", "RecordCheckInInput", "UpdateUserStatusInput", "set_fields"]


@strawberry.input(description="A new activity.")
class AddActivityInput:
    user_id: str = strawberry.field(description="1-255 characters.")
    type: str = strawberry.field(description="1-64 characters of [a-z0-9_.-], e.g. note.")
    description: str = strawberry.field(default="", description="At most 2,000 characters.")
    timestamp: datetime | None = strawberry.field(
        default=None, description="When it happened, with a timezone offset; default now."
    )
    metadata: JSON | None = strawberry.field(
        default=None, description="A JSON object of at most 16 KiB serialised; default {}."
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description=IDEMPOTENCY_KEY_DESCRIPTION
    )


@strawberry.input(
    description=(
        "A patch of a user's status: omitted fields keep their value, null clears a "
        "nullable field. A new status starts at alertLevel NONE."
    )
)
class UpdateUserStatusInput:
    user_id: str
    last_check_in: datetime | None = strawberry.UNSET
    next_due: datetime | None = strawberry.UNSET
    alert_level: AlertLevel | None = strawberry.field(
        default=strawberry.UNSET, description="Cannot be null; NONE clears an alert."
    )
    alert_triggered_at: datetime | None = strawberry.UNSET
    expected_version: int | None = strawberry.field(
        default=None,
        description=(
            "Write only if the status is at this version now (0: no status yet); otherwise "
            "nothing is written and the error is VERSION_CONFLICT with extensions.version."
        ),
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description=IDEMPOTENCY_KEY_DESCRIPTION
    )


@strawberry.input(description="A check-in: adds a check_in activity and resets the alert.")
class RecordCheckInInput:
    user_id: str
    interval_seconds: int = strawberry.field(
        description="Seconds until the next check-in is due: nextDue = timestamp + this. >= 0."
    )
    timestamp: datetime | None = strawberry.field(
        default=None, description="When the check-in happened; default now."
    )
    description: str = strawberry.field(
        default="Checked in", description="At most 2,000 characters."
    )
    metadata: JSON | None = strawberry.field(default=None, description="A JSON object; default {}.")
    idempotency_key: str | None = strawberry.field(
        default=None, description=IDEMPOTENCY_KEY_DESCRIPTION
    )


def set_fields(value: object, names: frozenset[str]) -> dict[str, Any]:
    """The fields of an input object that the client sent (explicit nulls included)."""
    return {
        name: getattr(value, name)
        for name in sorted(names)
        if getattr(value, name) is not strawberry.UNSET
    }
