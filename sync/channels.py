"""Channel names and the typed face of the hub: publish, replay and receive change events.

Each user has two channels: one for activities and one for status snapshots.
The feed channel carries every user's activities. Channel names hash the
user id: PostgreSQL channel names are identifiers of at most 63 bytes, and
user ids are opaque strings of up to 255 characters.

Resuming: a stream opened with ``after=seq`` first replays, from the outbox,
every committed event of that kind with a higher sequence number, then goes
live. It subscribes before it reads, and drops live events it already
replayed, so there is no gap and no duplicate at the seam.

Starting from a snapshot: a status stream opened without ``after`` yields the
current status first. It subscribes before it reads the snapshot and drops
live events up to the snapshot's ``seq``: no gap, no duplicate there either.
Both seams live here; resolvers only map what the streams yield to types.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from db import OutboxKind, SessionFactory, outbox

from .events import ChangeEvent
from .hub import Hub
from .subscribers import Subscriber

__all__ = [
    "FEED_CHANNEL",
    "Channels",
    "CursorExpired",
    "EventStream",
    "StatusReader",
    "StatusStream",
    "user_channel",
]

logger = logging.getLogger(__name__)

FEED_CHANNEL = "checkin.feed"
# Replayed events are read from the outbox in pages of this many.
REPLAY_PAGE = 500

#: Reads a user's current status payload, or ``None`` when the user has none;
#: :meth:`sync.reads.Reader.user_status` is one.
StatusReader = Callable[[str], Awaitable[dict[str, Any] | None]]


class CursorExpired(Exception):
    """A resume point is older than what the outbox retains (or ahead of the stream).

    Attributes:
        last_seq: the user's newest sequence number now.
    """

    def __init__(self, user_id: str, after: int, last_seq: int) -> None:
        super().__init__(
            f"cannot resume after seq {after} of {user_id!r}: "
            f"the stream is at {last_seq} and older events were pruned"
            if after < last_seq
            else f"cannot resume after seq {after} of {user_id!r}: the stream is at {last_seq}"
        )
        self.last_seq = last_seq


def user_channel(user_id: str, kind: OutboxKind) -> str:
    """The channel of one kind of ``user_id``'s events: ``checkin.<kind>.`` + 40 hex of SHA-256."""
    return f"checkin.{kind.value}." + hashlib.sha256(user_id.encode()).hexdigest()[:40]


class EventStream:
    """Change events from one subscription: replayed, then live; decoded, deduplicated, loaded.

    Events of one user arrive in sequence order; an event whose ``seq`` is not
    above the last one yielded for its user is dropped (a re-publish, or an
    event replay already served). ``last_seq`` is the resume point to hand
    back to a client that must reconnect.

    Iterating raises :class:`sync.subscribers.ChannelError` when the
    subscription is cut off (overflow, lost broker connection).
    """

    def __init__(
        self,
        subscriber: Subscriber,
        *,
        sessions: SessionFactory,
        user_id: str | None,
        kind: OutboxKind | None = None,
        after: int | None = None,
    ) -> None:
        self._subscriber = subscriber
        self._sessions = sessions
        self._user_id = user_id
        self._kind = kind
        self._after = after
        self._last_seq: dict[str, int] = {}

    @property
    def last_seq(self) -> int | None:
        """The highest sequence number yielded (for a single-user stream), or ``None``."""
        if self._user_id is None:
            return None
        return self._last_seq.get(self._user_id, self._after)

    def __aiter__(self) -> AsyncIterator[ChangeEvent]:
        return self._events()

    def skip_through(self, user_id: str, seq: int) -> None:
        """Drop events of ``user_id`` up to and including ``seq`` (already delivered)."""
        self._last_seq[user_id] = max(self._last_seq.get(user_id, 0), seq)

    async def check_resumable(self) -> None:
        """Raise :class:`CursorExpired` unless every event after ``after`` is still retained."""
        if self._after is None or self._user_id is None:
            return
        async with self._sessions() as session:
            last, first = await outbox.stream_bounds(session, user_id=self._user_id)
        if self._after > last or (
            self._after < last and (first is None or first > self._after + 1)
        ):
            raise CursorExpired(self._user_id, self._after, last)

    async def _replay(self) -> AsyncIterator[ChangeEvent]:
        assert self._user_id is not None and self._after is not None
        seq = self._after
        kinds = None if self._kind is None else [self._kind]
        while True:
            async with self._sessions() as session:
                entries = await outbox.after(
                    session, user_id=self._user_id, seq=seq, kinds=kinds, limit=REPLAY_PAGE
                )
            for entry in entries:
                yield ChangeEvent.from_entry(entry)
            if len(entries) < REPLAY_PAGE:
                return
            seq = entries[-1].seq

    async def _events(self) -> AsyncIterator[ChangeEvent]:
        if self._after is not None and self._user_id is not None:
            self._last_seq[self._user_id] = self._after
            async for event in self._replay():
                if self._accept(event):
                    yield event
        async for message in self._subscriber:
            try:
                event = ChangeEvent.decode(message.message)
            except ValueError:
                logger.warning("dropping malformed message on %s", message.channel)
                continue
            if not self._accept(event):
                continue
            if event.payload is None:
                loaded = await self._load(event)
                if loaded is None:
                    continue
                event = loaded
            yield event

    def _accept(self, event: ChangeEvent) -> bool:
        if self._user_id is not None and event.user_id != self._user_id:
            return False
        if self._kind is not None and event.kind is not self._kind:
            return False
        if event.seq <= self._last_seq.get(event.user_id, 0):
            return False
        self._last_seq[event.user_id] = event.seq
        return True

    async def _load(self, event: ChangeEvent) -> ChangeEvent | None:
        async with self._sessions() as session:
            entry = await outbox.get(session, entry_id=event.outbox_id)
        if entry is None:
            logger.error("outbox entry %s of user %r is gone", event.outbox_id, event.user_id)
            return None
        return event.with_payload(entry.payload)


class StatusStream:
    """A user's status: the current snapshot first (unless resuming), then after every change.

    Iterating yields status payloads and raises what :class:`EventStream` raises.
    """

    def __init__(self, events: EventStream, *, user_id: str, current: StatusReader | None) -> None:
        self._events = events
        self._user_id = user_id
        self._current = current

    @property
    def last_seq(self) -> int | None:
        """The ``seq`` of the last status yielded (the resume point), or ``None``."""
        return self._events.last_seq

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._statuses()

    async def _statuses(self) -> AsyncIterator[dict[str, Any]]:
        if self._current is not None:
            # Read after subscribing: a change committed meanwhile is either in
            # the snapshot (and skipped live) or arrives live.
            snapshot = await self._current(self._user_id)
            if snapshot is not None:
                self._events.skip_through(self._user_id, snapshot["seq"])
                yield snapshot
        async for event in self._events:
            assert event.payload is not None  # EventStream loads payloads sent by reference
            yield event.payload


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
        """Publish on the user's channel of the event's kind and, for activities, the feed.

        Raises:
            Exception: whatever the broker raises; the caller retries.
        """
        text = event.encode(max_bytes=self.max_message_bytes)
        await self.hub.publish(user_channel(event.user_id, event.kind), text)
        if event.kind is OutboxKind.ACTIVITY:
            await self.hub.publish(FEED_CHANNEL, text)

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
            user_channel(user_id, kind), conflate=kind is OutboxKind.STATUS
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
    async def feed_events(self) -> AsyncIterator[EventStream]:
        """Subscribe to every user's activities from now on."""
        async with self.hub.subscribe(FEED_CHANNEL) as subscriber:
            yield EventStream(
                subscriber, sessions=self._sessions, user_id=None, kind=OutboxKind.ACTIVITY
            )
