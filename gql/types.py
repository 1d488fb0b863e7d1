"""GraphQL object types. They are built from change payloads, never from ORM rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from db.models import AlertLevel
from db.payloads import ActivityPayload, StatusPayload
from sync.dashboard import DashboardUpdate as DashboardUpdatePayload

from .cursors import encode_cursor, encode_status_cursor

__all__ = [
    "Activity",
    "ActivityConnection",
    "ActivityEdge",
    "AlertLevel",
    "CheckInResult",
    "DashboardUpdate",
    "PageInfo",
    "UserStatus",
    "UserStatusConnection",
    "UserStatusEdge",
]


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# The stored enum is exposed as is: its values are the GraphQL enum values.
strawberry.enum(
    AlertLevel,
    name="AlertLevel",
    description="How worried a dashboard should be about a user, in rising order.",
)


@strawberry.type(description="One entry of a user's activity feed.")
class Activity:
    id: strawberry.ID
    user_id: str
    seq: int = strawberry.field(
        description=(
            "Position in the user's change stream (activities and status changes share it): "
            "1, 2, 3, ... in commit order, with no gaps."
        )
    )
    type: str = strawberry.field(description="Machine string of 1-64 [a-z0-9_.-], e.g. check_in.")
    description: str
    timestamp: datetime = strawberry.field(description="When it happened, UTC.")
    metadata: JSON = strawberry.field(description="A JSON object of at most 16 KiB.")

    @classmethod
    def from_payload(cls, payload: ActivityPayload) -> Activity:
        return cls(
            id=strawberry.ID(str(payload["id"])),
            user_id=payload["user_id"],
            seq=payload["seq"],
            type=payload["type"],
            description=payload["description"],
            timestamp=datetime.fromisoformat(payload["timestamp"]),
            metadata=JSON(payload["metadata"]),
        )


@strawberry.type(description="A user's current check-in status.")
class UserStatus:
    user_id: str
    last_check_in: datetime | None
    next_due: datetime | None = strawberry.field(description="When the next check-in is due, UTC.")
    alert_level: AlertLevel
    alert_triggered_at: datetime | None
    version: int = strawberry.field(description="1 for a new status, +1 on every write.")
    seq: int = strawberry.field(
        description="Position of this status's last change in the user's change stream."
    )
    updated_at: datetime

    @classmethod
    def from_payload(cls, payload: StatusPayload) -> UserStatus:
        return cls(
            user_id=payload["user_id"],
            last_check_in=_dt(payload["last_check_in"]),
            next_due=_dt(payload["next_due"]),
            alert_level=AlertLevel(payload["alert_level"]),
            alert_triggered_at=_dt(payload["alert_triggered_at"]),
            version=payload["version"],
            seq=payload["seq"],
            updated_at=datetime.fromisoformat(payload["updated_at"]),
        )


@strawberry.type(description="Relay PageInfo (GraphQL Cursor Connections Specification).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="An activity and its cursor.")
class ActivityEdge:
    cursor: str
    node: Activity


@strawberry.type(description="A page of activities, newest first.")
class ActivityConnection:
    edges: list[ActivityEdge]
    page_info: PageInfo

    @classmethod
    def from_page(
        cls, items: Sequence[ActivityPayload], *, has_next: bool, after: str | None
    ) -> ActivityConnection:
        edges = [
            ActivityEdge(cursor=encode_cursor(i), node=Activity.from_payload(i)) for i in items
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=has_next,
                # Forward pagination only: per the spec this may be false when `after` is set.
                has_previous_page=False,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


def _page_info(cursors: Sequence[str], *, has_next: bool) -> PageInfo:
    return PageInfo(
        has_next_page=has_next,
        # Forward pagination only: per the spec this may be false when `after` is set.
        has_previous_page=False,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )


@strawberry.type(description="A user's status and its cursor.")
class UserStatusEdge:
    cursor: str
    node: UserStatus


@strawberry.type(description="A page of user statuses, most urgent first.")
class UserStatusConnection:
    edges: list[UserStatusEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, items: Sequence[StatusPayload], *, has_next: bool) -> UserStatusConnection:
        edges = [
            UserStatusEdge(cursor=encode_status_cursor(i), node=UserStatus.from_payload(i))
            for i in items
        ]
        return cls(edges=edges, page_info=_page_info([e.cursor for e in edges], has_next=has_next))


@strawberry.type(description="What recordCheckIn wrote: the check_in activity and the new status.")
class CheckInResult:
    activity: Activity
    status: UserStatus


@strawberry.type(
    description=(
        "One message of the dashboard subscription. Applying every message up to seq S "
        "(a reset replaces the view, a delta is applied to it) gives the user's state "
        "as the database held it at S."
    )
)
class DashboardUpdate:
    seq: int = strawberry.field(
        description="The watermark: this message brings the view up to seq."
    )
    reset: bool = strawberry.field(
        description="true: a snapshot, replace the view; false: a delta, apply it (seq is +1)."
    )
    status: UserStatus | None = strawberry.field(
        description="Snapshot: the current status (null if none). Delta: the new status, or null."
    )
    activities: list[Activity] = strawberry.field(
        description=(
            "Snapshot: the newest activities, newest first (by seq, commit order). "
            "Delta: the added activity (prepend it, keep the newest), or []."
        )
    )

    @classmethod
    def from_update(cls, update: DashboardUpdatePayload) -> DashboardUpdate:
        return cls(
            seq=update.seq,
            reset=update.reset,
            status=None if update.status is None else UserStatus.from_payload(update.status),
            activities=[Activity.from_payload(a) for a in update.activities],
        )
