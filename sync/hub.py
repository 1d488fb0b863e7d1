"""Fan-out of broker events to local subscribers, over a ``broadcaster.BroadcastBackend``.

The hub holds one backend connection per process and one :class:`Subscriber`
inbox per local subscription. It uses only broadcaster's public face
(:class:`broadcaster.BroadcastBackend`, :class:`broadcaster.Event`);
``broadcaster.Broadcast`` itself is not used because, in 0.3.1:

* Two concurrent first subscribers of a channel both call the backend's
  ``subscribe``; the second overwrites the first's queue set, so the first
  receives nothing and raises ``KeyError`` on exit. Here a per-channel lock
  serialises the first subscription and the last unsubscription.
* Per-subscriber queues are unbounded: one stalled reader grows memory
  without limit. Here each :class:`Subscriber` holds at most ``max_queue``
  events; on overflow it ends with :class:`SubscriberOverflow`, or, if it
  conflates, keeps only the newest event.
* A listener task that dies leaves every subscriber waiting forever. Here
  they end with :class:`ChannelDisconnected`, and the listener reconnects the
  backend with capped exponential backoff.
* ``publish`` failures and outages are silent. Here :attr:`Hub.healthy`
  says whether the listener is connected, for readiness checks.
* A subscriber cancelled while the backend subscribes interrupts the driver
  mid-command. Here registration and release are shielded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager, suppress
from typing import Self

from broadcaster import BroadcastBackend, Event

from .backends import create_backend
from .subscribers import ChannelDisconnected, ChannelError, Subscriber

__all__ = ["DEFAULT_MAX_QUEUE", "Hub"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 1_000
# Inboxes filled between two yields to the event loop: one channel with
# thousands of local subscribers must not hold the loop for the whole fan-out.
FANOUT_SLICE = 200
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0


class _ChannelLock:
    """Serialises a channel's first subscription and last unsubscription."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        # Subscriptions entering, inside or leaving; the lock is dropped at zero.
        self.users = 0


class Hub:
    """Publish/subscribe over a broadcaster backend, chosen by URL or passed in.

    Args:
        url: ``memory://``, ``redis://host:port/db[?prefix=...]`` or
            ``postgres://...``; see :func:`sync.backends.create_backend`.
        backend: a pre-built backend instead of ``url`` (tests use this).
        max_queue: events one subscriber may have unread before it is cut off.

    Attributes:
        overflows: subscribers cut off for reading too slowly, since start.
        disconnects: broker connections lost, since start.

    The constructor does no I/O: use ``async with`` or :meth:`connect`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: BroadcastBackend | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        if backend is None:
            if url is None:
                raise ValueError("give a url or a backend")
            backend = create_backend(url)
        self._backend = backend
        self.max_queue = max_queue
        self._inboxes: dict[str, set[Subscriber]] = {}
        self._locks: dict[str, _ChannelLock] = {}
        self._listener: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.overflows = 0
        self.disconnects = 0

    @property
    def backend(self) -> BroadcastBackend:
        """The backend in use (its ``max_message_bytes`` attribute, if any, limits messages)."""
        return self._backend

    @property
    def healthy(self) -> bool:
        """Whether the listener holds a working broker connection."""
        return self._connected.is_set()

    @property
    def channels(self) -> int:
        """Channels with at least one local subscriber."""
        return len(self._inboxes)

    @property
    def subscribers(self) -> int:
        """Local subscribers over all channels."""
        return sum(len(inboxes) for inboxes in self._inboxes.values())

    @property
    def queued(self) -> int:
        """Events waiting in all local subscribers' inboxes."""
        return sum(s.queued for inboxes in self._inboxes.values() for s in inboxes)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        """Connect the backend and start the listener. Raises what the backend raises."""
        await self._backend.connect()
        self._connected.set()
        self._closing = False
        self._listener = asyncio.create_task(self._listen(), name="hub-listener")

    async def disconnect(self) -> None:
        """Stop the listener, close every subscriber normally, disconnect the backend."""
        self._closing = True
        self._connected.clear()
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        for inboxes in self._inboxes.values():
            for subscriber in inboxes:
                subscriber.close()
        with suppress(Exception):
            await self._backend.disconnect()

    async def wait_healthy(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a working connection; return whether there is one."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.healthy

    async def publish(self, channel: str, text: str) -> None:
        """Publish ``text`` on ``channel``. Raises what the backend raises."""
        await self._backend.publish(channel, text)

    @asynccontextmanager
    async def subscribe(
        self,
        channel: str,
        *,
        conflate: bool = False,
        conflate_key: Callable[[Event], Hashable] | None = None,
    ) -> AsyncIterator[Subscriber]:
        """Receive the events published on ``channel`` from now on.

        An event published after this is entered is delivered. Leaving closes
        the subscriber and, for the channel's last one, unsubscribes the backend.

        Args:
            channel: the channel name.
            conflate: keep only the newest unread event on overflow (see
                :class:`Subscriber`).
            conflate_key: conflate per key instead (see :class:`Subscriber`).

        Raises:
            ChannelDisconnected: the broker is unreachable right now.
        """
        if not self.healthy:
            raise ChannelDisconnected("broker is not connected")
        subscriber = Subscriber(
            channel,
            self.max_queue,
            conflate=conflate,
            conflate_key=conflate_key,
            on_overflow=self._count_overflow,
        )
        state = self._locks.setdefault(channel, _ChannelLock())
        state.users += 1
        await self._enter(channel, subscriber, state)
        try:
            yield subscriber
        finally:
            subscriber.close()
            # Shielded: a cancelled consumer must still release the channel.
            await asyncio.shield(self._unsubscribe(channel, subscriber, state))

    async def _enter(self, channel: str, subscriber: Subscriber, state: _ChannelLock) -> None:
        # Shielded: cancelling a driver mid-command can leave its connection
        # unusable (redis-py), so a cancelled subscriber lets the registration
        # finish and then undoes it.
        registration = asyncio.ensure_future(self._register(channel, subscriber, state))
        try:
            await asyncio.shield(registration)
        except asyncio.CancelledError:
            with suppress(BaseException):
                await registration
            if (
                registration.done()
                and not registration.cancelled()
                and not registration.exception()
            ):
                await asyncio.shield(self._unsubscribe(channel, subscriber, state))
            else:
                self._release(channel, state)
            raise
        except BaseException:
            self._release(channel, state)
            raise

    async def _register(self, channel: str, subscriber: Subscriber, state: _ChannelLock) -> None:
        async with state.lock:
            inboxes = self._inboxes.get(channel)
            if inboxes is None:
                await self._backend.subscribe(channel)
                self._inboxes[channel] = {subscriber}
            else:
                inboxes.add(subscriber)

    async def _unsubscribe(self, channel: str, subscriber: Subscriber, state: _ChannelLock) -> None:
        try:
            async with state.lock:
                inboxes = self._inboxes.get(channel)
                if inboxes is None:
                    return
                inboxes.discard(subscriber)
                if not inboxes:
                    del self._inboxes[channel]
                    if self.healthy:
                        try:
                            await self._backend.unsubscribe(channel)
                        except Exception as exc:
                            logger.warning("unsubscribe from %r failed: %r", channel, exc)
        finally:
            self._release(channel, state)

    def _release(self, channel: str, state: _ChannelLock) -> None:
        state.users -= 1
        if state.users == 0 and self._locks.get(channel) is state:
            del self._locks[channel]

    def _count_overflow(self) -> None:
        self.overflows += 1

    async def _listen(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        while True:
            try:
                while True:
                    event = await self._backend.next_published()
                    delay = RECONNECT_MIN_SECONDS
                    await self._fan_out(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected.clear()
                self.disconnects += 1
                logger.warning("hub listener lost its connection: %r", exc)
                self._fail_all(ChannelDisconnected(f"broker connection lost: {exc!r}"))
            await self._reconnect(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _fan_out(self, event: Event) -> None:
        """Queue ``event`` for the channel's subscribers, yielding every :data:`FANOUT_SLICE`.

        The next event is read only after this one reached every inbox, so
        each subscriber still gets the channel's events in broker order.
        """
        inboxes = self._inboxes.get(event.channel)
        if not inboxes:
            return
        for count, subscriber in enumerate(list(inboxes), 1):
            subscriber.push(event)
            if count % FANOUT_SLICE == 0:
                await asyncio.sleep(0)

    async def _reconnect(self, delay: float) -> None:
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                with suppress(Exception):
                    await self._backend.disconnect()
                await self._backend.connect()
                for channel in list(self._inboxes):
                    await self._backend.subscribe(channel)
            except Exception as exc:
                logger.warning("hub reconnect failed: %r", exc)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            logger.info("hub listener reconnected")
            self._connected.set()
            return

    def _fail_all(self, error: ChannelError) -> None:
        for inboxes in self._inboxes.values():
            for subscriber in inboxes:
                subscriber.fail(error)
