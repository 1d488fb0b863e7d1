"""PostgreSQL ``LISTEN``/``NOTIFY`` broker backend.

broadcaster 0.3.1's ``PostgresBackend`` runs ``LISTEN`` and ``NOTIFY`` on one
asyncpg connection, and nothing notices when that connection dies: the
listener waits forever and every subscriber with it.

Here one connection listens and a small pool publishes. The listening
connection is watched two ways: asyncpg's termination listener (the server
closed it, e.g. ``pg_terminate_backend``) and a periodic ``SELECT 1`` (the
network went quiet). Either makes :meth:`next_published` raise, which our
:class:`sync.hub.Hub` turns into ``ChannelDisconnected`` and a
reconnect.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

import asyncpg
from broadcaster import BroadcastBackend, Event

__all__ = ["LISTEN_APPLICATION_NAME", "PUBLISH_APPLICATION_NAME", "PostgresBackend", "asyncpg_dsn"]

# NOTIFY payloads must be shorter than 8000 bytes; leave room to spare.
MAX_MESSAGE_BYTES = 7_900
CHECK_INTERVAL_SECONDS = 5.0
PUBLISH_CONNECTIONS = 2
# application_name of the connections, so that operators (and fault tests) can
# tell them apart in pg_stat_activity; a DSN that sets its own keeps it.
LISTEN_APPLICATION_NAME = "checkin-realtime broadcast listen"
PUBLISH_APPLICATION_NAME = "checkin-realtime broadcast publish"


def asyncpg_dsn(url: str) -> str:
    """``url`` as asyncpg accepts it: a SQLAlchemy ``+asyncpg`` driver suffix is dropped."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return scheme.split("+", 1)[0] + "://" + rest


class PostgresBackend(BroadcastBackend):
    """Publish/subscribe over PostgreSQL notifications.

    Args:
        url: ``postgres://user:password@host:port/db`` (``postgresql://`` and
            ``postgresql+asyncpg://`` work too). Channels are scoped to the
            database.
        check_interval: seconds between liveness checks of the listening
            connection; a check that takes as long counts as a lost connection.
        publish_connections: size of the publishing pool.

    Attributes:
        max_message_bytes: largest payload sent (UTF-8 bytes);
            :class:`sync.channels.Channels` sends bigger events by reference.

    The constructor does no I/O.
    """

    max_message_bytes = MAX_MESSAGE_BYTES

    def __init__(
        self,
        url: str,
        *,
        check_interval: float = CHECK_INTERVAL_SECONDS,
        publish_connections: int = PUBLISH_CONNECTIONS,
    ) -> None:
        self._dsn = asyncpg_dsn(url)
        self.check_interval = check_interval
        self.publish_connections = publish_connections
        self._listen: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._checker: asyncio.Task[None] | None = None
        # LISTEN, UNLISTEN and the liveness check share one connection, which
        # runs one statement at a time.
        self._lock = asyncio.Lock()
        self._queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._closing = False

    @property
    def listen_pid(self) -> int | None:
        """Server process id of the listening connection, or ``None`` when not connected."""
        return None if self._listen is None else self._listen.get_server_pid()

    async def connect(self) -> None:
        """Open the listening connection and the publishing pool.

        Raises:
            OSError, asyncpg.PostgresError: the server is unreachable or refuses.
        """
        self._queue = asyncio.Queue()
        self._closing = False
        try:
            self._listen = await asyncpg.connect(
                self._dsn, server_settings=self._named(LISTEN_APPLICATION_NAME)
            )
            self._listen.add_termination_listener(self._on_terminated)
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self.publish_connections,
                server_settings=self._named(PUBLISH_APPLICATION_NAME),
            )
        except BaseException:
            await self.disconnect()
            raise
        self._checker = asyncio.create_task(self._check(), name="postgres-broadcast-check")

    def _named(self, name: str) -> dict[str, str]:
        return {} if "application_name" in self._dsn else {"application_name": name}

    async def disconnect(self) -> None:
        """Close both connections. Never raises."""
        self._closing = True
        if self._checker is not None:
            self._checker.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._checker
            self._checker = None
        if self._listen is not None:
            try:
                await asyncio.wait_for(self._listen.close(), self.check_interval)
            except Exception:
                self._listen.terminate()
            self._listen = None
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), self.check_interval)
            except Exception:
                self._pool.terminate()
            self._pool = None

    async def subscribe(self, channel: str) -> None:
        """``LISTEN`` on ``channel`` (at most 63 bytes); effective when this returns."""
        assert self._listen is not None, "connect() first"
        async with self._lock:
            await self._listen.add_listener(channel, self._on_notify)

    async def unsubscribe(self, channel: str) -> None:
        assert self._listen is not None, "connect() first"
        async with self._lock:
            await self._listen.remove_listener(channel, self._on_notify)

    async def publish(self, channel: str, message: Any) -> None:
        """``NOTIFY`` ``channel`` with text ``message``.

        Raises:
            asyncpg.PostgresError: e.g. the payload is 8000 bytes or longer.
            OSError: the server is unreachable.
            ConnectionError: not connected (e.g. between a lost connection and
                the reconnect).
        """
        if self._pool is None:
            raise ConnectionError("the PostgreSQL broker is not connected")
        await self._pool.execute("SELECT pg_notify($1, $2)", channel, message)

    async def next_published(self) -> Event:
        """The next notification on a subscribed channel.

        Raises:
            ConnectionError: the listening connection was lost.
        """
        item = await self._queue.get()
        if isinstance(item, BaseException):
            # Keep it for later callers: the backend stays broken until reconnected.
            self._queue.put_nowait(item)
            raise item
        return item

    def _on_notify(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        self._queue.put_nowait(Event(channel=channel, message=payload))

    def _on_terminated(self, _connection: Any) -> None:
        if not self._closing:
            self._lost(ConnectionError("the PostgreSQL LISTEN connection was closed"))

    def _lost(self, error: BaseException) -> None:
        self._queue.put_nowait(error)

    async def _check(self) -> None:
        assert self._listen is not None
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                async with self._lock:
                    await self._listen.fetchval("SELECT 1", timeout=self.check_interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._closing:
                    self._lost(ConnectionError(f"the PostgreSQL LISTEN connection failed: {exc!r}"))
                return
