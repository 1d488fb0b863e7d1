"""Query root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import strawberry

from sync import ActivityPage

from .context import Context
from .cursors import decode_cursor, decode_status_cursor
from .errors import user_input
from .permissions import ADMIN_ONLY, OWN_USER, Authorize
from .types import ActivityConnection, AlertLevel, UserStatus, UserStatusConnection

__all__ = ["Query"]

Info = strawberry.Info[Context, None]

DEFAULT_FIRST = 20
STATUS_PAGE = 50


def _first(first: int | None) -> int:
    # An explicit null means the default page size, as an omitted argument does.
    return DEFAULT_FIRST if first is None else first


async def _connection(
    after: str | None, load: Callable[..., Awaitable[ActivityPage]]
) -> ActivityConnection:
    """The page ``load(after=key)`` reads after the cursor ``after``; bad input is
    ``BAD_USER_INPUT``."""
    with user_input():
        page = await load(after=decode_cursor(after) if after is not None else None)
    return ActivityConnection.from_page(page.items, has_next=page.has_next, after=after)


@strawberry.type
class Query:
    @strawberry.field(
        extensions=[Authorize(OWN_USER)],
        description=(
            "A user's activities, newest first by timestamp then id, as a Relay connection. "
            "`first` is 1-100; `after` is a cursor from this field; `types` keeps only "
            "these types (null: all, []: none)."
        ),
    )
    async def recent_activities(
        self,
        info: Info,
        user_id: str,
        first: int | None = 20,
        after: str | None = None,
        types: list[str] | None = None,
    ) -> ActivityConnection:
        reader = info.context.reader
        load = partial(reader.recent_activities, user_id, first=_first(first), types=types)
        return await _connection(after, load)

    @strawberry.field(
        extensions=[Authorize(OWN_USER)],
        description="A user's status, or null when the user has none.",
    )
    async def user_status(self, info: Info, user_id: str) -> UserStatus | None:
        with user_input():
            payload = await info.context.reader.user_status(user_id)
        return None if payload is None else UserStatus.from_payload(payload)

    @strawberry.field(
        extensions=[Authorize(ADMIN_ONLY)],
        description="Every user's activities, newest first; arguments as recentActivities.",
    )
    async def activity_feed(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        types: list[str] | None = None,
    ) -> ActivityConnection:
        load = partial(info.context.reader.activity_feed, first=_first(first), types=types)
        return await _connection(after, load)

    @strawberry.field(
        extensions=[Authorize(ADMIN_ONLY)],
        description=(
            "Every user's status, most urgent first: alert level descending, then nextDue "
            "ascending (none last), then userId. `alertLevels` keeps only these levels "
            "(null: all, []: none); `overdue: true` keeps nextDue < now, false the others. "
            "`first` is 1-100; `after` is a cursor from this field. Keyset pages: a user "
            "whose status does not change is on exactly one page; one whose level or nextDue "
            "changes between pages moves, so may be seen twice or not at all."
        ),
    )
    async def user_statuses(
        self,
        info: Info,
        alert_levels: list[AlertLevel] | None = None,
        overdue: bool | None = None,
        first: int | None = STATUS_PAGE,
        after: str | None = None,
    ) -> UserStatusConnection:
        with user_input():
            page = await info.context.reader.user_statuses(
                first=STATUS_PAGE if first is None else first,
                after=None if after is None else decode_status_cursor(after),
                alert_levels=alert_levels,
                overdue=overdue,
            )
        return UserStatusConnection.from_page(page.items, has_next=page.has_next)
