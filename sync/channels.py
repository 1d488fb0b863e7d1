"""Channel names and the typed face of the hub: publish, replay and receive change events.

Each user has two channels: one for activities and one for status snapshots.
The feed channel carries every user's activities, the status feed channel
every user's status snapshots. Channel names hash the
user id: PostgreSQL channel names are identifiers of at most 63 bytes, and
user ids are opaque strings of up to 255 characters.

Both seams of a subscription live here and in :mod:`sync.streams`
(and :mod:`sync.dashboard` for the dashboard's snapshot at a watermark): resuming
with ``after`` (replay from the outbox, then live) and starting from a status
snapshot (then live). :class:`Channels` subscribes before anything is read, so
neither seam has a gap or a duplicate. Resolvers only map what the streams
yield to types.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import assert_never

from broadcaster import Event

from db import OutboxKind, SessionFactory
from db.dashboard import check_activities

from .dashboard import DashboardStream, MergedInbox
from .events import ChangeEvent
from .hub import Hub
from .streams import CursorExpired, EventStream, StatusReader, StatusStream

__all__ = [
    "FEED_CHANNEL",
    "STATUS_FEED_CHANNEL",
    "Channels",
    "CursorExpired",
    "DashboardStream",
    "EventStream",
    "StatusReader",
    "StatusStream",
    "user_channel",
]

FEED_CHANNEL = "checkin.feed"
STATUS_FEED_CHANNEL = "checkin.status_feed"


def user_channel(user_id: str, kind: OutboxKind) -> str:
    """The channel of one kind of ``user_id``'s events: ``checkin.<kind>.`` + 40 hex of SHA-256."""
    return f"checkin.{kind.value}." + hashlib.sha256(user_id.encode()).hexdigest()[:40]


def _conflates(kind: OutboxKind) -> bool:
    """Whether a lagging subscriber may skip to the newest event: only for full snapshots."""
    match kind:
        case OutboxKind.STATUS:
            return True
        case OutboxKind.ACTIVITY:
            return False
        case _:
            assert_never(kind)


def _feed_channel(kind: OutboxKind) -> str:
    """The channel that carries every user's events of ``kind``."""
    match kind:
        case OutboxKind.ACTIVITY:
            return FEED_CHANNEL
        case OutboxKind.STATUS:
            return STATUS_FEED_CHANNEL
        case _:
            assert_never(kind)


def _user_of(message: Event) -> str:
    """The user id of an encoded change event; ``""`` for a malformed one (dropped later)."""
    try:
        return str(json.loads(message.message)["u"])
    except (ValueError, KeyError, TypeError):
        return ""


class Channels:
    """Publishes change events and opens :class:`EventStream` and :class:`StatusStream` ones.

    Args:
        hub: a connected :class:`sync.hub.Hub`.
        sessions: used to replay and to load events published by reference.
        max_message_bytes: largest message the broker carries; bigger events
            travel as a reference to their outbox entry. Defaults to the
            backend's ``max_message_bytes`` attribute, if any.
    """

    def __init__(
        self,
        hub: Hub,
        *,
        sessions: SessionFactory,
        max_message_bytes: int | None = None,
    ) -> None:
        self.hub = hub
        self._sessions = sessions
        self.max_message_bytes = max_message_bytes or getattr(
            hub.backend, "max_message_bytes", None
        )

    async def publish(self, event: ChangeEvent) -> None:
        """Publish on the user's channel of the event's kind and on that kind's feed.

        Raises:
            Exception: whatever the broker raises; the caller retries.
        """
        text = event.encode(max_bytes=self.max_message_bytes)
        await self.hub.publish(user_channel(event.user_id, event.kind), text)
        await self.hub.publish(_feed_channel(event.kind), text)

    @asynccontextmanager
    async def user_events(
        self, user_id: str, kind: OutboxKind, *, after: int | None = None
    ) -> AsyncIterator[EventStream]:
        """Subscribe to ``user_id``'s events of ``kind``, replaying those after ``after`` first.

        Status channels conflate: a subscriber more than the inbox size behind
        skips to the newest snapshot (its ``seq`` jumps) instead of being cut
        off; one that keeps up gets every change. Activity channels are
        bounded FIFOs that end with an overflow.

        Raises:
            ChannelDisconnected: the broker is unreachable.
            CursorExpired: ``after`` can no longer be replayed.
        """
        async with self.hub.subscribe(
            user_channel(user_id, kind), conflate=_conflates(kind)
        ) as subscriber:
            stream = EventStream(
                subscriber, sessions=self._sessions, user_id=user_id, kind=kind, after=after
            )
            await stream.check_resumable()
            yield stream

    @asynccontextmanager
    async def status_events(
        self, user_id: str, *, after: int | None = None, current: StatusReader
    ) -> AsyncIterator[StatusStream]:
        """``user_id``'s current status (read by ``current`` after subscribing), then every change.

        With ``after``, no snapshot is read: the changes after that ``seq`` are
        replayed instead. Conflates and raises as :meth:`user_events`.
        """
        async with self.user_events(user_id, OutboxKind.STATUS, after=after) as events:
            yield StatusStream(events, user_id=user_id, current=current if after is None else None)

    @asynccontextmanager
    async def dashboard(
        self, user_id: str, *, after: int | None = None, activities: int
    ) -> AsyncIterator[DashboardStream]:
        """``user_id``'s dashboard: a snapshot at one watermark, then one delta per change.

        Subscribes to both of the user's channels before anything is read.
        With ``after``, the changes after it are replayed instead of a
        snapshot; an ``after`` that can no longer be replayed starts with a
        snapshot. Both inboxes conflate: a subscriber that falls behind gets
        a fresh snapshot (see :mod:`sync.dashboard`), never an overflow.

        Raises:
            db.InvalidInput: ``activities`` is not 1-100.
            ChannelDisconnected: the broker is unreachable.
        """
        check_activities(activities)
        async with (
            self.hub.subscribe(user_channel(user_id, OutboxKind.ACTIVITY), conflate=True) as added,
            self.hub.subscribe(user_channel(user_id, OutboxKind.STATUS), conflate=True) as changed,
        ):
            inbox = MergedInbox(added, changed)
            events = EventStream(inbox, sessions=self._sessions, user_id=user_id, after=after)
            if after is not None:
                try:
                    await events.check_resumable()
                except CursorExpired:
                    after = None
                    events = EventStream(inbox, sessions=self._sessions, user_id=user_id)
            yield DashboardStream(
                events,
                sessions=self._sessions,
                user_id=user_id,
                activities=activities,
                after=after,
            )

    @asynccontextmanager
    async def feed_events(self) -> AsyncIterator[EventStream]:
        """Subscribe to every user's activities from now on."""
        async with self.hub.subscribe(FEED_CHANNEL) as subscriber:
            yield EventStream(
                subscriber, sessions=self._sessions, user_id=None, kind=OutboxKind.ACTIVITY
            )

    @asynccontextmanager
    async def status_feed_events(self) -> AsyncIterator[EventStream]:
        """Subscribe to every user's status changes from now on.

        Conflates per user: a lagging subscriber gets the newest status of
        every user that changed (the inbox holds at most one queued status per
        user beyond ``max_queue``), never some users' changes and not others'.
        """
        async with self.hub.subscribe(STATUS_FEED_CHANNEL, conflate_key=_user_of) as subscriber:
            yield EventStream(
                subscriber, sessions=self._sessions, user_id=None, kind=OutboxKind.STATUS
            )
