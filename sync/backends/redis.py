"""Redis pub/sub broker backend.

broadcaster 0.3.1's ``RedisBackend`` starts its reader when the first
``subscribe`` begins, before redis-py has recorded the channel; with redis-py
8.x the reader finds no subscription, stops, and waits for the *next*
subscribe: the first subscriber of a channel receives nothing. It also lets
redis-py reconnect and resubscribe silently, so events published during the
gap are lost without anyone being told.

This backend reads the subscriber connection from :meth:`connect` on, waits
for Redis to confirm each ``SUBSCRIBE`` (so an event published after
:meth:`subscribe` returns is delivered), never retries a dropped connection
itself, and pings an idle connection: a lost or silent connection makes
:meth:`next_published` raise, which our :class:`sync.hub.Hub`
turns into ``ChannelDisconnected`` and a reconnect.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from broadcaster import BroadcastBackend, Event
from redis import asyncio as redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from .._redis_url import split_prefix

__all__ = ["RedisBackend"]

PING_INTERVAL_SECONDS = 5.0
SUBSCRIBE_TIMEOUT_SECONDS = 5.0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBackend(BroadcastBackend):
    """Publish/subscribe over Redis ``PUBLISH``/``SUBSCRIBE``.

    Args:
        url: ``redis://[:password@]host:port/db?prefix=...``; ``prefix`` is
            prepended to every channel name, so that deployments (or test
            runs) sharing one Redis do not hear each other. Redis pub/sub
            ignores the database number.
        client: a pre-built ``redis.asyncio.Redis`` instead of ``url`` (the
            caller closes it). Give it ``retry=Retry(NoBackoff(), 0)``, or
            redis-py may reconnect on its own and hide an outage.
        prefix: overrides the URL's ``prefix``.
        ping_interval: seconds of silence after which the subscriber
            connection is pinged; no answer within as long again counts as
            a lost connection.

    The constructor does no I/O. Messages are text; Redis carries up to
    512 MB, so there is no ``max_message_bytes``.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str | None = None,
        ping_interval: float = PING_INTERVAL_SECONDS,
        subscribe_timeout: float = SUBSCRIBE_TIMEOUT_SECONDS,
    ) -> None:
        if url is None and client is None:
            raise ValueError("give a url or a client")
        url_prefix = ""
        if url is not None:
            url, url_prefix = split_prefix(url)
        self._url = url
        self._given_client = client
        self.prefix = url_prefix if prefix is None else prefix
        self.ping_interval = ping_interval
        self.subscribe_timeout = subscribe_timeout
        self._client: redis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}

    def _make_client(self) -> redis.Redis:
        if self._given_client is not None:
            return self._given_client
        assert self._url is not None
        # No retries: a dropped subscriber connection must surface as an error,
        # not be silently re-established with events lost in between.
        return redis.Redis.from_url(self._url, retry=Retry(NoBackoff(), 0))

    async def connect(self) -> None:
        """Open the publisher and subscriber connections and start reading.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        self._queue = asyncio.Queue()
        self._confirmations = {}
        self._client = self._make_client()
        try:
            await self._client.ping()
            self._pubsub = self._client.pubsub()
            await self._pubsub.connect()
        except BaseException:
            await self.disconnect()
            raise
        self._reader = asyncio.create_task(self._read(), name="redis-broadcast-reader")

    async def disconnect(self) -> None:
        """Stop reading and close the connections. Never raises."""
        if self._reader is not None:
            self._reader.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        if self._client is not None and self._client is not self._given_client:
            with suppress(Exception):
                await self._client.aclose()
        self._client = None
        self._fail_confirmations(RedisConnectionError("broadcast backend disconnected"))

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait until Redis confirms it.

        Raises:
            redis.exceptions.ConnectionError: the connection is lost.
            TimeoutError: no confirmation within ``subscribe_timeout`` seconds.
        """
        name = self.prefix + channel
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._confirmations.setdefault(name, [])
        waiting.append(future)
        try:
            await self._pubsub.subscribe(name)
            await asyncio.wait_for(future, self.subscribe_timeout)
        finally:
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._confirmations.pop(name, None)

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(self.prefix + channel)

    async def publish(self, channel: str, message: Any) -> None:
        """Publish text ``message``.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable, or the backend is
                not connected (e.g. between a lost connection and the reconnect).
        """
        if self._client is None:
            raise RedisConnectionError("the Redis broker is not connected")
        await self._client.publish(self.prefix + channel, message)

    async def next_published(self) -> Event:
        """The next message of a subscribed channel, with the prefix stripped.

        Raises:
            redis.exceptions.ConnectionError: the subscriber connection was lost.
        """
        item = await self._queue.get()
        if isinstance(item, BaseException):
            # Keep it for later callers: the backend stays broken until reconnected.
            self._queue.put_nowait(item)
            raise item
        return item

    async def _read(self) -> None:
        awaiting_pong = False
        try:
            while True:
                message = await self._pubsub.get_message(timeout=self.ping_interval)
                if message is None:
                    if awaiting_pong:
                        raise RedisConnectionError(
                            f"Redis did not answer a PING within {self.ping_interval} s"
                        )
                    await self._pubsub.ping()
                    awaiting_pong = True
                    continue
                # Any traffic shows the connection is alive.
                awaiting_pong = False
                kind = message["type"]
                if kind == "message":
                    channel = _text(message["channel"])
                    self._queue.put_nowait(
                        Event(
                            channel=channel.removeprefix(self.prefix),
                            message=_text(message["data"]),
                        )
                    )
                elif kind == "subscribe":
                    for future in self._confirmations.get(_text(message["channel"]), ()):
                        if not future.done():
                            future.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._queue.put_nowait(exc)
            self._fail_confirmations(exc)

    def _fail_confirmations(self, exc: BaseException) -> None:
        for futures in self._confirmations.values():
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
