"""What a subscription yields: change events replayed then live, and status snapshots.

:class:`EventStream` owns the replay-then-live seam: opened with ``after=seq``
it first replays, from the outbox, every committed event with a higher
sequence number, then goes live, dropping live events replay already served.
:class:`StatusStream` owns the snapshot-then-live seam: it yields the current
status first and drops live events up to the snapshot's ``seq``. Both are
subscribed before they read, so nothing falls between the read and live.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from broadcaster import Event

from db import OutboxKind, SessionFactory, outbox
from db.payloads import StatusPayload

from .events import ChangeEvent

__all__ = [
    "REPLAY_PAGE",
    "CursorExpired",
    "EventStream",
    "Inbox",
    "StatusReader",
    "StatusStream",
    "decode_shared",
    "is_shared",
]

logger = logging.getLogger(__name__)

# Replayed events are read from the outbox in pages of this many, one page
# at a time as the client reads: a subscription that does not read holds one
# page, not the history. An entry is at most about 30 KB as text (16 KiB of
# metadata, 2,000 characters of description), so a page is at most ~0.5 MB.
REPLAY_PAGE = 16

# Broker messages decoded, kept by text: every local subscriber of a channel
# reads the same message, and decodes it once for all (see decode_shared).
# A subscriber that lags past them decodes again. Kept small: a message is up
# to about 30 KB as text, and its event as much again.
DECODED_MESSAGES = 256


class _Decoded:
    """The events of the latest broker messages, one object per message text."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._by_text: OrderedDict[str, ChangeEvent] = OrderedDict()
        self._by_id: dict[int, ChangeEvent] = {}

    def decode(self, text: str) -> ChangeEvent:
        event = self._by_text.get(text)
        if event is not None:
            return event
        event = ChangeEvent.decode(text)
        self._by_text[text] = event
        self._by_id[id(event)] = event
        while len(self._by_text) > self.size:
            _, old = self._by_text.popitem(last=False)
            del self._by_id[id(old)]
        return event

    def holds(self, event: ChangeEvent) -> bool:
        return self._by_id.get(id(event)) is event


_decoded = _Decoded(DECODED_MESSAGES)


def decode_shared(text: str) -> ChangeEvent:
    """:meth:`ChangeEvent.decode`, once per message text for every subscriber of the process.

    The event is shared: nothing may change it (it is frozen, its payload is
    only read).

    Raises:
        ValueError: as :meth:`ChangeEvent.decode`.
    """
    return _decoded.decode(text)


def is_shared(event: ChangeEvent) -> bool:
    """Whether ``event`` is the one object every local subscriber got for its broker message.

    Replayed events, and events loaded by reference, are read per subscription
    and are not.
    """
    return _decoded.holds(event)


#: Reads a user's current status payload, or ``None`` when the user has none;
#: :meth:`sync.reads.Reader.user_status` is one.
StatusReader = Callable[[str], Awaitable[StatusPayload | None]]


class Inbox(Protocol):
    """Where an :class:`EventStream` reads live events: a hub subscriber, or several merged.

    :class:`sync.subscribers.Subscriber` is one, :class:`sync.dashboard.MergedInbox` another.

    Iterating ends at a normal close and raises :class:`sync.subscribers.ChannelError`
    when the subscription is cut off.
    """

    def __aiter__(self) -> AsyncIterator[Event]: ...


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
        subscriber: Inbox,
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
        while True:
            page = await self._replay_page(self._user_id, seq)
            full = len(page) == REPLAY_PAGE
            # Newest last, popped: a yielded event is not also kept by the page.
            page.reverse()
            while page:
                event = page.pop()
                seq = event.seq
                yield event
            if not full:
                return

    async def _replay_page(self, user_id: str, seq: int) -> list[ChangeEvent]:
        """The next :data:`REPLAY_PAGE` events after ``seq``; no ORM row outlives the call."""
        kinds = None if self._kind is None else [self._kind]
        async with self._sessions() as session:
            entries = await outbox.after(
                session, user_id=user_id, seq=seq, kinds=kinds, limit=REPLAY_PAGE
            )
        return [ChangeEvent.from_entry(entry) for entry in entries]

    async def _events(self) -> AsyncIterator[ChangeEvent]:
        if self._after is not None and self._user_id is not None:
            self._last_seq[self._user_id] = self._after
            async for event in self._replay():
                if self._accept(event):
                    yield event
        async for message in self._subscriber:
            try:
                event = decode_shared(message.message)
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
    ``event`` is the change event of the status last yielded (``None`` for the snapshot).
    """

    def __init__(self, events: EventStream, *, user_id: str, current: StatusReader | None) -> None:
        self.event: ChangeEvent | None = None
        self._events = events
        self._user_id = user_id
        self._current = current

    @property
    def last_seq(self) -> int | None:
        """The ``seq`` of the last status yielded (the resume point), or ``None``."""
        return self._events.last_seq

    def __aiter__(self) -> AsyncIterator[StatusPayload]:
        return self._statuses()

    async def _statuses(self) -> AsyncIterator[StatusPayload]:
        if self._current is not None:
            # Read after subscribing: a change committed meanwhile is either in
            # the snapshot (and skipped live) or arrives live.
            snapshot = await self._current(self._user_id)
            if snapshot is not None:
                self._events.skip_through(self._user_id, snapshot["seq"])
                yield snapshot
        async for event in self._events:
            self.event = event
            yield event.status
