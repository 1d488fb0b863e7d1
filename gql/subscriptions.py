"""Subscription root.

Every subscription listens before it reads, so nothing committed between the
read and the first live event is missed, and events are deduplicated by
sequence number or status version at the seam.

When a subscription is cut off (its client read too slowly, or the broker
connection was lost) it ends with an error whose ``extensions.code`` is
``SUBSCRIBER_OVERFLOW`` or ``BROKER_DISCONNECTED``; the client re-subscribes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError

from db import OutboxKind
from db.validation import check_user_id
from sync import ChannelDisconnected, ChannelError, SubscriberOverflow

from .context import Context
from .errors import user_input
from .permissions import ADMIN_ONLY, OWN_USER, Authorize
from .types import Activity, UserStatus

__all__ = ["Subscription"]

Info = strawberry.Info[Context, None]

_ACTIVITY = frozenset({OutboxKind.ACTIVITY})
_STATUS = frozenset({OutboxKind.STATUS})


def _cut_off(exc: ChannelError) -> GraphQLError:
    if isinstance(exc, SubscriberOverflow):
        code = "SUBSCRIBER_OVERFLOW"
    elif isinstance(exc, ChannelDisconnected):
        code = "BROKER_DISCONNECTED"
    else:
        code = "SUBSCRIPTION_ENDED"
    return GraphQLError(f"subscription ended: {exc}; subscribe again", extensions={"code": code})


@strawberry.type
class Subscription:
    @strawberry.subscription(
        extensions=[Authorize(OWN_USER)],
        description="Each activity added for the user, from now on.",
    )
    async def activity_added(self, info: Info, user_id: str) -> AsyncGenerator[Activity, None]:
        with user_input():
            check_user_id(user_id)
        try:
            async with info.context.channels.user_events(user_id, kinds=_ACTIVITY) as stream:
                async for event in stream:
                    assert event.payload is not None
                    yield Activity.from_payload(event.payload)
        except ChannelError as exc:
            raise _cut_off(exc) from None

    @strawberry.subscription(
        extensions=[Authorize(OWN_USER)],
        description="The user's current status first (if any), then every change of it.",
    )
    async def user_status_changed(
        self, info: Info, user_id: str
    ) -> AsyncGenerator[UserStatus, None]:
        with user_input():
            check_user_id(user_id)
        ctx = info.context
        try:
            async with ctx.channels.user_events(user_id, kinds=_STATUS) as stream:
                version = 0
                current = await ctx.reader.user_status(user_id)
                if current is not None:
                    version = current["version"]
                    yield UserStatus.from_payload(current)
                async for event in stream:
                    assert event.payload is not None
                    if event.payload["version"] <= version:
                        continue
                    version = event.payload["version"]
                    yield UserStatus.from_payload(event.payload)
        except ChannelError as exc:
            raise _cut_off(exc) from None

    @strawberry.subscription(
        extensions=[Authorize(ADMIN_ONLY)],
        description="Each activity added for any user, from now on.",
    )
    async def activity_feed_added(self, info: Info) -> AsyncGenerator[Activity, None]:
        try:
            async with info.context.channels.feed_events() as stream:
                async for event in stream:
                    assert event.payload is not None
                    yield Activity.from_payload(event.payload)
        except ChannelError as exc:
            raise _cut_off(exc) from None
