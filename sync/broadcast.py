"""A :class:`broadcaster.Broadcast` that is safe to use under load.

broadcaster 0.3.1 has four defects this subclass fixes:

* Two concurrent first subscribers of a channel both call the backend's
  ``subscribe``; the second overwrites the first's queue set, so the first
  receives nothing and raises ``KeyError`` on exit. Here a per-channel lock
  serialises the first subscription and the last unsubscription.
* Per-subscriber queues are unbounded: one stalled reader grows memory
  without limit. Here each :class:`Subscriber` holds at most ``max_queue``
  events; on overflow it ends with :class:`SubscriberOverflow`.
* A listener task that dies leaves every subscriber waiting forever. Here
  they end with :class:`ChannelDisconnected`, and the listener reconnects the
  backend with capped exponential backoff.
* ``publish`` failures and outages are silent. Here :attr:`Broadcast.healthy`
  says whether the listener is connected, for readiness checks.

Its Redis and PostgreSQL backends are replaced too: :meth:`Broadcast._create_backend`
picks ours from :mod:`sync.backends`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, Self

import broadcaster
from broadcaster import Event
from broadcaster._base import Unsubscribed

from .backends import create_backend

if TYPE_CHECKING:
    from broadcaster._backends.base import BroadcastBackend

__all__ = [
    "Broadcast",
    "ChannelDisconnected",
    "ChannelError",
    "Event",
    "Subscriber",
    "SubscriberOverflow",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 1_000
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0


class ChannelError(Exception):
    """A subscription ended before its consumer asked it to."""


class SubscriberOverflow(ChannelError):
    """The subscriber fell more than ``max_queue`` events behind and was cut off."""


class ChannelDisconnected(ChannelError):
    """The broker connection was lost; events published meanwhile may be missing."""


class Subscriber:
    """One subscription's inbox: a bounded FIFO of :class:`broadcaster.Event`.

    Args:
        max_queue: unread events allowed; one more ends the subscription with
            :class:`SubscriberOverflow`.
        conflate: on overflow, keep only the newest event instead of ending
            the subscription (for channels whose events are full snapshots,
            where the latest supersedes the rest). A subscriber that keeps up
            still gets every event.
    """

    def __init__(
        self,
        channel: str,
        max_queue: int,
        *,
        conflate: bool = False,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.channel = channel
        self._on_overflow = on_overflow
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._max_queue = max_queue
        self._conflate = conflate
        self._error: ChannelError | None = None
        self._closed = False
        self.dropped = 0

    def __repr__(self) -> str:
        return f"Subscriber(channel={self.channel!r}, queued={self._queue.qsize()})"

    @property
    def queued(self) -> int:
        """Events waiting to be read."""
        return self._queue.qsize()

    def push(self, event: Event) -> None:
        """Queue ``event`` without blocking; overflow ends the subscription."""
        if self._closed:
            return
        if self._conflate and self._queue.qsize() >= self._max_queue:
            while not self._queue.empty():
                self._queue.get_nowait()
                self.dropped += 1
            self._queue.put_nowait(event)
            return
        if self._queue.qsize() >= self._max_queue:
            if self._on_overflow is not None:
                self._on_overflow()
            self.fail(
                SubscriberOverflow(
                    f"subscriber of {self.channel!r} fell {self._max_queue} events behind"
                )
            )
            return
        self._queue.put_nowait(event)

    def fail(self, error: ChannelError) -> None:
        """End the subscription with ``error``; queued events are dropped."""
        if self._closed:
            return
        self._error = error
        self._closed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def close(self) -> None:
        """End the subscription normally: queued events are still delivered first."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def get(self) -> Event:
        """The next event.

        Raises:
            Unsubscribed: the subscription was closed normally.
            ChannelError: it was ended by an overflow or a lost connection.
        """
        item = await self._queue.get()
        if item is None:
            # Keep the sentinel so that later calls raise too.
            self._queue.put_nowait(None)
            if self._error is not None:
                raise self._error
            raise Unsubscribed()
        return item

    async def __aiter__(self) -> AsyncGenerator[Event, None]:
        with suppress(Unsubscribed):
            while True:
                yield await self.get()


class _ChannelLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Broadcast(broadcaster.Broadcast):
    """Publish/subscribe over a broadcaster backend, chosen by URL or passed in.

    Args:
        url: ``memory://``, ``redis://host:port/db[?prefix=...]`` or
            ``postgres://...``; see :func:`sync.backends.create_backend`.
        backend: a pre-built backend instead of ``url`` (tests use this).
        max_queue: events one subscriber may have unread before it is cut off.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: BroadcastBackend | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        super().__init__(url, backend=backend)
        self.max_queue = max_queue
        self._inboxes: dict[str, set[Subscriber]] = {}
        self._locks: dict[str, _ChannelLock] = {}
        self._listener_runner: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.overflows = 0
        self.disconnects = 0

    def _create_backend(self, url: str) -> BroadcastBackend:
        return create_backend(url)

    @property
    def healthy(self) -> bool:
        """Whether the listener holds a working broker connection."""
        return self._connected.is_set()

    @property
    def channels(self) -> int:
        """Channels with at least one local subscriber."""
        return len(self._inboxes)

    @property
    def queued(self) -> int:
        """Events waiting in all local subscribers' inboxes."""
        return sum(s.queued for inboxes in self._inboxes.values() for s in inboxes)

    @property
    def subscribers(self) -> int:
        """Local subscribers over all channels."""
        return sum(len(inboxes) for inboxes in self._inboxes.values())

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def connect(self) -> None:
        """Connect the backend and start the listener. Raises what the backend raises."""
        await self._backend.connect()
        self._connected.set()
        self._closing = False
        self._listener_runner = asyncio.create_task(self._listener(), name="broadcast-listener")

    async def disconnect(self) -> None:
        """Stop the listener, close every subscriber normally, disconnect the backend."""
        self._closing = True
        self._connected.clear()
        if self._listener_runner is not None:
            self._listener_runner.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener_runner
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

    async def _listener(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        while True:
            try:
                while True:
                    event = await self._backend.next_published()
                    delay = RECONNECT_MIN_SECONDS
                    for subscriber in list(self._inboxes.get(event.channel, ())):
                        subscriber.push(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected.clear()
                self.disconnects += 1
                logger.warning("broadcast listener lost its connection: %r", exc)
                self._fail_all(ChannelDisconnected(f"broker connection lost: {exc!r}"))
            await self._reconnect(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

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
                logger.warning("broadcast reconnect failed: %r", exc)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            logger.info("broadcast listener reconnected")
            self._connected.set()
            return

    def _fail_all(self, error: ChannelError) -> None:
        for inboxes in self._inboxes.values():
            for subscriber in inboxes:
                subscriber.fail(error)

    async def publish(self, channel: str, message: Any) -> None:
        """Publish ``message`` (text) on ``channel``. Raises what the backend raises."""
        await self._backend.publish(channel, message)

    @asynccontextmanager
    async def subscribe(  # type: ignore[override]
        self, channel: str, *, conflate: bool = False
    ) -> AsyncIterator[Subscriber]:
        """Receive the events published on ``channel`` from now on.

        Args:
            conflate: keep only the newest unread event (see :class:`Subscriber`).

        Raises:
            ChannelDisconnected: the broker is unreachable right now.
        """
        if not self.healthy:
            raise ChannelDisconnected("broker is not connected")
        subscriber = Subscriber(
            channel, self.max_queue, conflate=conflate, on_overflow=self._count_overflow
        )
        state = self._locks.setdefault(channel, _ChannelLock())
        state.users += 1
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
        try:
            yield subscriber
        finally:
            subscriber.close()
            # Shielded: a cancelled consumer must still release the channel.
            await asyncio.shield(self._unsubscribe(channel, subscriber, state))

    async def _register(self, channel: str, subscriber: Subscriber, state: _ChannelLock) -> None:
        async with state.lock:
            inboxes = self._inboxes.get(channel)
            if inboxes is None:
                await self._backend.subscribe(channel)
                self._inboxes[channel] = {subscriber}
            else:
                inboxes.add(subscriber)

    def _count_overflow(self) -> None:
        self.overflows += 1

    def _release(self, channel: str, state: _ChannelLock) -> None:
        state.users -= 1
        if state.users == 0 and self._locks.get(channel) is state:
            del self._locks[channel]

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

    @property
    def backend(self) -> BroadcastBackend:
        """The backend in use (its ``max_message_bytes`` attribute, if any, limits messages)."""
        return self._backend
