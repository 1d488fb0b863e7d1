"""One subscription's inbox, and the ways a subscription ends.

A :class:`Subscriber` is what :meth:`sync.hub.Hub.subscribe` yields: a bounded
FIFO of :class:`broadcaster.Event` that the hub's listener fills without ever
blocking. Reading it after it ended raises :class:`SubscriptionClosed` (the
consumer left, or the hub shut down) or a :class:`ChannelError` (it was cut
off).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Callable, Hashable
from contextlib import suppress

from broadcaster import Event

__all__ = [
    "ChannelDisconnected",
    "ChannelError",
    "Subscriber",
    "SubscriberOverflow",
    "SubscriptionClosed",
]


class SubscriptionClosed(Exception):
    """The subscription ended normally: its context was left or the hub disconnected."""


class ChannelError(Exception):
    """A subscription ended before its consumer asked it to."""


class SubscriberOverflow(ChannelError):
    """The subscriber fell more than ``max_queue`` events behind and was cut off."""


class ChannelDisconnected(ChannelError):
    """The broker connection was lost; events published meanwhile may be missing."""


class _Slot:
    """A queued place that holds the newest unread event of one conflation key."""

    __slots__ = ("event", "key")

    def __init__(self, event: Event, key: Hashable) -> None:
        self.event = event
        self.key = key


class Subscriber:
    """One subscription's inbox: a bounded FIFO of :class:`broadcaster.Event`.

    It has one reader: a second :meth:`get` while one waits raises ``RuntimeError``.

    Args:
        channel: the channel subscribed to.
        max_queue: unread events allowed; one more ends the subscription with
            :class:`SubscriberOverflow`.
        conflate: on overflow, keep only the newest event instead of ending
            the subscription (for channels whose events are full snapshots,
            where the latest supersedes the rest). A subscriber that keeps up
            still gets every event.
        conflate_key: conflate per key instead (for a channel of many users'
            snapshots, keyed by user): when the inbox is full, an event whose
            key is already queued replaces that queued event in place, and one
            whose key is not is queued anyway. So no key's newest event is
            ever dropped, and the inbox holds at most ``max_queue`` plus the
            number of distinct keys queued (for the status feed: users).
        on_overflow: called once when the subscription is cut off by an overflow.

    Attributes:
        dropped: events discarded by conflation.
    """

    # Thousands of these sit idle on one instance: no per-instance dict.
    __slots__ = (
        "_closed",
        "_conflate",
        "_error",
        "_items",
        "_key",
        "_max_queue",
        "_on_overflow",
        "_slots",
        "_waiter",
        "channel",
        "dropped",
    )

    def __init__(
        self,
        channel: str,
        max_queue: int,
        *,
        conflate: bool = False,
        conflate_key: Callable[[Event], Hashable] | None = None,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.channel = channel
        self._on_overflow = on_overflow
        # Allocated at the first event, and dropped again when read empty: most
        # subscriptions sit idle, and an empty deque holds a 64-slot block.
        # None is the end-of-stream sentinel; it is queued once and kept.
        self._items: deque[Event | _Slot | None] | None = None
        # The one reader waiting in get(), if any.
        self._waiter: asyncio.Future[None] | None = None
        self._max_queue = max_queue
        self._conflate = conflate
        self._key = conflate_key
        # The newest queued slot of each key (keyed conflation only).
        self._slots: dict[Hashable, _Slot] | None = {} if conflate_key is not None else None
        self._error: ChannelError | None = None
        self._closed = False
        self.dropped = 0

    def __repr__(self) -> str:
        return f"Subscriber(channel={self.channel!r}, queued={self.queued})"

    @property
    def queued(self) -> int:
        """Events waiting to be read."""
        return len(self._items) if self._items is not None else 0

    def push(self, event: Event) -> None:
        """Queue ``event`` without blocking; overflow ends the subscription (or conflates)."""
        if self._closed:
            return
        if self._key is not None:
            self._push_keyed(event, self._key(event))
        elif self.queued < self._max_queue:
            self._put(event)
        elif self._conflate:
            self.dropped += self._drain()
            self._put(event)
        else:
            if self._on_overflow is not None:
                self._on_overflow()
            self.fail(
                SubscriberOverflow(
                    f"subscriber of {self.channel!r} fell {self._max_queue} events behind"
                )
            )

    def _push_keyed(self, event: Event, key: Hashable) -> None:
        assert self._slots is not None
        slot = self._slots.get(key)
        if slot is not None and self.queued >= self._max_queue:
            slot.event = event
            self.dropped += 1
            return
        slot = self._slots[key] = _Slot(event, key)
        self._put(slot)

    def _put(self, item: Event | _Slot | None) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def fail(self, error: ChannelError) -> None:
        """End the subscription with ``error``; queued events are dropped."""
        if self._closed:
            return
        self._error = error
        self._closed = True
        self._drain()
        self._put(None)

    def close(self) -> None:
        """End the subscription normally: queued events are still delivered first."""
        if not self._closed:
            self._closed = True
            self._put(None)

    async def get(self) -> Event:
        """The next event.

        Raises:
            SubscriptionClosed: the subscription was closed normally.
            ChannelError: it was ended by an overflow or a lost connection.
        """
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError(f"subscriber of {self.channel!r} already has a reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items[0]
        if item is None:
            # The sentinel stays queued, so that later calls raise too.
            if self._error is not None:
                raise self._error
            raise SubscriptionClosed()
        self._items.popleft()
        if not self._items:
            self._items = None
        if isinstance(item, _Slot):
            assert self._slots is not None
            if self._slots.get(item.key) is item:
                del self._slots[item.key]
            return item.event
        return item

    async def __aiter__(self) -> AsyncGenerator[Event, None]:
        """Every event until a normal close; a :class:`ChannelError` propagates."""
        with suppress(SubscriptionClosed):
            while True:
                yield await self.get()

    def _drain(self) -> int:
        count = self.queued
        self._items = None
        if self._slots:
            self._slots.clear()
        return count
