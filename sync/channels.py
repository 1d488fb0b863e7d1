"""Channel names and the typed face of the broadcast: publish and receive change events.

Each user has one channel carrying that user's activities and status changes
in sequence order; the feed channel carries every user's activities.
Channel names hash the user id: PostgreSQL channel names are identifiers of
at most 63 bytes, and user ids are opaque strings of up to 255 characters.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from db import OutboxKind, SessionFactory, outbox

from .broadcast import Broadcast, Subscriber
from .events import ChangeEvent

__all__ = ["FEED_CHANNEL", "Channels", "EventStream", "user_channel"]

logger = logging.getLogger(__name__)

FEED_CHANNEL = "checkin.feed"


def user_channel(user_id: str) -> str:
    """The channel of ``user_id``: ``checkin.u.`` and 40 hex digits of its SHA-256."""
    return "checkin.u." + hashlib.sha256(user_id.encode()).hexdigest()[:40]


class EventStream:
    """Change events from one subscription, decoded, deduplicated and loaded.

    Events of one user arrive in sequence order; an event whose ``seq`` is not
    above the last one yielded for its user (a re-publish) is dropped. Events
    that travelled as references are loaded from the outbox.

    Iterating raises :class:`sync.broadcast.ChannelError` when the subscription
    is cut off (overflow, lost broker connection).
    """

    def __init__(
        self,
        subscriber: Subscriber,
        *,
        sessions: SessionFactory,
        user_id: str | None,
        kinds: frozenset[OutboxKind] | None = None,
    ) -> None:
        self._subscriber = subscriber
        self._sessions = sessions
        self._user_id = user_id
        self._kinds = kinds
        self._last_seq: dict[str, int] = {}

    def __aiter__(self) -> AsyncIterator[ChangeEvent]:
        return self._events()

    def skip_through(self, user_id: str, seq: int) -> None:
        """Drop events of ``user_id`` up to and including ``seq`` (already delivered)."""
        self._last_seq[user_id] = max(self._last_seq.get(user_id, 0), seq)

    async def _events(self) -> AsyncIterator[ChangeEvent]:
        async for message in self._subscriber:
            try:
                event = ChangeEvent.decode(message.message)
            except ValueError:
                logger.warning("dropping malformed message on %s", message.channel)
                continue
            if self._user_id is not None and event.user_id != self._user_id:
                continue
            if event.seq <= self._last_seq.get(event.user_id, 0):
                continue
            self._last_seq[event.user_id] = event.seq
            if self._kinds is not None and event.kind not in self._kinds:
                continue
            if event.payload is None:
                loaded = await self._load(event)
                if loaded is None:
                    continue
                event = loaded
            yield event

    async def _load(self, event: ChangeEvent) -> ChangeEvent | None:
        async with self._sessions() as session:
            entry = await outbox.get(session, entry_id=event.outbox_id)
        if entry is None:
            logger.error("outbox entry %s of user %r is gone", event.outbox_id, event.user_id)
            return None
        return event.with_payload(entry.payload)


class Channels:
    """Publishes change events and opens :class:`EventStream` subscriptions.

    Args:
        broadcast: a connected :class:`Broadcast`.
        sessions: used to load events published by reference.
        max_message_bytes: largest message the broker carries; bigger events
            travel as a reference to their outbox entry. Defaults to the
            backend's ``max_message_bytes`` attribute, if any.
    """

    def __init__(
        self,
        broadcast: Broadcast,
        *,
        sessions: SessionFactory,
        max_message_bytes: int | None = None,
    ) -> None:
        self.broadcast = broadcast
        self._sessions = sessions
        self.max_message_bytes = max_message_bytes or getattr(
            broadcast.backend, "max_message_bytes", None
        )

    async def publish(self, event: ChangeEvent) -> None:
        """Publish on the user's channel and, for activities, the feed channel.

        Raises:
            Exception: whatever the broker raises; the caller retries.
        """
        text = event.encode(max_bytes=self.max_message_bytes)
        await self.broadcast.publish(user_channel(event.user_id), text)
        if event.kind is OutboxKind.ACTIVITY:
            await self.broadcast.publish(FEED_CHANNEL, text)

    @asynccontextmanager
    async def user_events(
        self, user_id: str, *, kinds: frozenset[OutboxKind] | None = None
    ) -> AsyncIterator[EventStream]:
        """Subscribe to ``user_id``'s changes from now on.

        Raises:
            ChannelDisconnected: the broker is unreachable.
        """
        async with self.broadcast.subscribe(user_channel(user_id)) as subscriber:
            yield EventStream(subscriber, sessions=self._sessions, user_id=user_id, kinds=kinds)

    @asynccontextmanager
    async def feed_events(self) -> AsyncIterator[EventStream]:
        """Subscribe to every user's activities from now on."""
        async with self.broadcast.subscribe(FEED_CHANNEL) as subscriber:
            yield EventStream(subscriber, sessions=self._sessions, user_id=None)
