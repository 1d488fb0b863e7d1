"""In-process broker backend: events reach only subscribers of this process.

For one instance (and tests). broadcaster ships one too, but only under a
private module path; this one is ours, on the public interface.
"""

from __future__ import annotations

import asyncio
from typing import Any

from broadcaster import BroadcastBackend, Event

__all__ = ["MemoryBackend"]


class MemoryBackend(BroadcastBackend):
    """Publish/subscribe within the process.

    Args:
        url: ``memory://``; nothing in it is used.

    The constructor does no I/O. An event is delivered if its channel is
    subscribed when it is published, as with a network broker.
    """

    def __init__(self, url: str = "memory://") -> None:
        # BroadcastBackend.__init__ only raises NotImplementedError: not called.
        self.url = url
        self._subscribed: set[str] = set()
        self._published: asyncio.Queue[Event] | None = None

    @property
    def subscribed(self) -> frozenset[str]:
        """The channels subscribed to now."""
        return frozenset(self._subscribed)

    async def connect(self) -> None:
        """Start with an empty queue (events of an earlier connection are dropped)."""
        self._published = asyncio.Queue()

    async def disconnect(self) -> None:
        """Forget the subscriptions and queued events. Never raises."""
        self._published = None
        self._subscribed.clear()

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def publish(self, channel: str, message: Any) -> None:
        """Queue ``message`` for the subscribers of ``channel``.

        Raises:
            ConnectionError: not connected.
        """
        if self._published is None:
            raise ConnectionError("the memory broker is not connected")
        if channel in self._subscribed:
            self._published.put_nowait(Event(channel=channel, message=message))

    async def next_published(self) -> Event:
        """The next event published on a subscribed channel.

        Raises:
            ConnectionError: not connected.
        """
        if self._published is None:
            raise ConnectionError("the memory broker is not connected")
        return await self._published.get()
