"""Subscription root.

Every subscription listens before it reads, so nothing committed between the
read and the first live event is missed, and events are deduplicated by
sequence number at the seam; :mod:`sync.channels` owns both seams (replay
then live, snapshot then live). Resolvers here map what it yields to types.

Resuming: ``activityAdded``, ``userStatusChanged`` and ``dashboard`` take
``after``, the ``seq`` of the last item the client received. The server
replays every change after it from the database, then goes live.

``dashboard`` never ends with ``CURSOR_EXPIRED`` or ``SUBSCRIBER_OVERFLOW``:
where the others would, it sends a fresh snapshot (``reset: true``) at one
watermark instead (:mod:`sync.dashboard`).

A subscription that cannot go on ends with an error whose ``extensions`` say
why and where to resume:

* ``SUBSCRIBER_OVERFLOW``: the client read too slowly (more than
  ``SUBSCRIBER_QUEUE`` events behind). ``extensions.after`` is the last
  ``seq`` delivered: subscribe again with it.
* ``BROKER_DISCONNECTED``: the broker connection was lost. Same remedy.
* ``CURSOR_EXPIRED``: ``after`` is older than the outbox retains. Subscribe
  again without ``after`` (``userStatusChanged`` then starts with a fresh
  snapshot) and reload the feed with ``recentActivities``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, TypeVar

import strawberry
from graphql import GraphQLError

from db import OutboxKind
from db.dashboard import check_activities
from db.validation import check_user_id
from sync import ChannelDisconnected, ChannelError, EventStream, SubscriberOverflow
from sync.channels import CursorExpired, DashboardStream, StatusStream

from .codes import ErrorCode
from .context import Context
from .errors import BadUserInput, user_input
from .metrics import Delivery
from .multiplex import share
from .permissions import ADMIN_ONLY, OWN_USER, Authorize
from .types import Activity, DashboardUpdate, UserStatus

__all__ = ["Subscription"]

Info = strawberry.Info[Context, None]

AFTER_DESCRIPTION = (
    "Resume after this seq (the last one received): changes after it are replayed "
    "from the database first. Omit to start from now."
)

DASHBOARD_ACTIVITIES = 20
DASHBOARD_AFTER_DESCRIPTION = (
    "Resume after this seq (the last one applied): changes after it are replayed from "
    "the database first; one that can no longer be replayed gets a fresh snapshot. "
    "Omit to start with a snapshot."
)


def _ended(exc: Exception, after: int | None) -> GraphQLError:
    extensions: dict[str, Any]
    if isinstance(exc, CursorExpired):
        extensions = {"code": ErrorCode.CURSOR_EXPIRED, "lastSeq": exc.last_seq}
        message = f"{exc}; subscribe again without `after` for a fresh snapshot"
    else:
        if isinstance(exc, SubscriberOverflow):
            code = ErrorCode.SUBSCRIBER_OVERFLOW
        elif isinstance(exc, ChannelDisconnected):
            code = ErrorCode.BROKER_DISCONNECTED
        else:
            code = ErrorCode.SUBSCRIPTION_ENDED
        extensions = {"code": code, "after": after}
        message = f"subscription ended: {exc}; subscribe again with after: {after}"
    return GraphQLError(message, extensions=extensions)


_Stream = TypeVar("_Stream", EventStream, StatusStream, DashboardStream)


def _check(user_id: str, after: int | None) -> None:
    with user_input():
        check_user_id(user_id)
    if after is not None and after < 0:
        raise BadUserInput("after", f"must be >= 0 (got {after})")


@asynccontextmanager
async def _resumable(
    opening: AbstractAsyncContextManager[_Stream], after: int | None, delivery: Delivery
) -> AsyncIterator[_Stream]:
    """Enter ``opening``; map how its stream ends to an error that says where to resume."""
    stream: _Stream | None = None
    try:
        async with opening as stream:
            yield stream
    except (ChannelError, CursorExpired) as exc:
        if isinstance(exc, CursorExpired):
            delivery.cursor_expired()
        raise _ended(exc, stream.last_seq if stream is not None else after) from None


def _delivery(info: Info, *, after: int | None = None) -> Delivery:
    """Metrics (and spans) of this subscription: ``info.field_name`` is the schema's name."""
    return info.context.services.metrics.subscription(info.field_name, resumed=after is not None)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        extensions=[Authorize(OWN_USER)],
        description="Each activity added for the user, in seq order.",
    )
    async def activity_added(
        self,
        info: Info,
        user_id: str,
        after: Annotated[int | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> AsyncGenerator[Activity, None]:
        _check(user_id, after)
        events = info.context.channels.user_events(user_id, OutboxKind.ACTIVITY, after=after)
        with _delivery(info, after=after) as delivery:
            async with _resumable(events, after, delivery) as stream:
                async for event in stream:
                    with delivery.deliver(event.committed_at, event.trace_parent):
                        yield share(Activity.from_payload(event.activity), event)

    @strawberry.subscription(
        extensions=[Authorize(OWN_USER)],
        description=(
            "The user's status: without `after`, the current status first (if any), "
            "then every change; with `after`, every change after that seq."
        ),
    )
    async def user_status_changed(
        self,
        info: Info,
        user_id: str,
        after: Annotated[int | None, strawberry.argument(description=AFTER_DESCRIPTION)] = None,
    ) -> AsyncGenerator[UserStatus, None]:
        _check(user_id, after)
        statuses = info.context.channels.status_events(
            user_id, after=after, current=info.context.reader.user_status
        )
        with _delivery(info, after=after) as delivery:
            async with _resumable(statuses, after, delivery) as stream:
                async for status in stream:
                    if (event := stream.event) is None:  # the snapshot, not a change
                        yield UserStatus.from_payload(status)
                        continue
                    with delivery.deliver(event.committed_at, event.trace_parent):
                        yield share(UserStatus.from_payload(status), event)

    @strawberry.subscription(
        extensions=[Authorize(OWN_USER)],
        description=(
            "The user's dashboard at one watermark: without `after`, a snapshot "
            "(reset: true) of the status and newest activities at one seq, then one "
            "delta per change, each at seq + 1. With `after`, the changes after it "
            "first; a cursor past retention, or a client that falls SUBSCRIBER_QUEUE "
            "changes behind, gets a fresh snapshot instead."
        ),
    )
    async def dashboard(
        self,
        info: Info,
        user_id: str,
        after: Annotated[
            int | None, strawberry.argument(description=DASHBOARD_AFTER_DESCRIPTION)
        ] = None,
        activities: Annotated[
            int | None,
            strawberry.argument(description="Activities in a snapshot, 1-100 (null: 20)."),
        ] = DASHBOARD_ACTIVITIES,
    ) -> AsyncGenerator[DashboardUpdate, None]:
        _check(user_id, after)
        count = DASHBOARD_ACTIVITIES if activities is None else activities
        with user_input():
            check_activities(count)
        opening = info.context.channels.dashboard(user_id, after=after, activities=count)
        with _delivery(info, after=after) as delivery:
            async with _resumable(opening, after, delivery) as stream:
                async for update in stream:
                    if (event := update.event) is None:  # a snapshot, not a change
                        yield DashboardUpdate.from_update(update)
                        continue
                    with delivery.deliver(event.committed_at, event.trace_parent):
                        yield share(DashboardUpdate.from_update(update), event)

    @strawberry.subscription(
        extensions=[Authorize(ADMIN_ONLY)],
        description="Each activity added for any user, from now on.",
    )
    async def activity_feed_added(self, info: Info) -> AsyncGenerator[Activity, None]:
        try:
            with _delivery(info) as delivery:
                async with info.context.channels.feed_events() as stream:
                    async for event in stream:
                        with delivery.deliver(event.committed_at, event.trace_parent):
                            yield share(Activity.from_payload(event.activity), event)
        except ChannelError as exc:
            raise _ended(exc, None) from None

    @strawberry.subscription(
        extensions=[Authorize(ADMIN_ONLY)],
        description=(
            "Each user's status after every change, for any user, from now on. A client "
            "that reads too slowly gets the newest status of each changed user (a user's "
            "seq may jump), never some users' changes without the others'."
        ),
    )
    async def user_status_feed(self, info: Info) -> AsyncGenerator[UserStatus, None]:
        try:
            with _delivery(info) as delivery:
                async with info.context.channels.status_feed_events() as stream:
                    async for event in stream:
                        with delivery.deliver(event.committed_at, event.trace_parent):
                            yield share(UserStatus.from_payload(event.status), event)
        except ChannelError as exc:
            raise _ended(exc, None) from None
