"""Query root."""

from __future__ import annotations

import strawberry

from .context import Context
from .cursors import decode_cursor
from .errors import user_input
from .types import ActivityConnection, UserStatus

__all__ = ["Query"]

Info = strawberry.Info[Context, None]


@strawberry.type
class Query:
    @strawberry.field(
        description=(
            "A user's activities, newest first by timestamp then id, as a Relay connection. "
            "`first` is 1-100; `after` is a cursor from this field; `types` keeps only "
            "these types (null: all, []: none)."
        )
    )
    async def recent_activities(
        self,
        info: Info,
        user_id: str,
        first: int | None = 20,
        after: str | None = None,
        types: list[str] | None = None,
    ) -> ActivityConnection:
        with user_input():
            key = decode_cursor(after) if after is not None else None
            page = await info.context.reader.recent_activities(
                user_id, first=20 if first is None else first, after=key, types=types
            )
        return ActivityConnection.from_page(page.items, has_next=page.has_next, after=after)

    @strawberry.field(description="A user's status, or null when the user has none.")
    async def user_status(self, info: Info, user_id: str) -> UserStatus | None:
        with user_input():
            payload = await info.context.reader.user_status(user_id)
        return None if payload is None else UserStatus.from_payload(payload)

    @strawberry.field(
        description="Every user's activities, newest first; arguments as recentActivities."
    )
    async def activity_feed(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        types: list[str] | None = None,
    ) -> ActivityConnection:
        with user_input():
            key = decode_cursor(after) if after is not None else None
            page = await info.context.reader.activity_feed(
                first=20 if first is None else first, after=key, types=types
            )
        return ActivityConnection.from_page(page.items, has_next=page.has_next, after=after)
