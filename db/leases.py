"""The relay lease: at most one process per PostgreSQL database drains the outbox.

Several instances share one database. If each ran its relay, they would claim
the same entries and publish them twice, and could interleave one user's
events. Instead each instance tries to take a session-level advisory lock
(``pg_try_advisory_lock``) on a connection of its own, kept for the life of the
process; the one that gets it relays, the others try again every poll
interval. The lock goes with the connection: when the holder's connection
dies (crash, ``pg_terminate_backend``, network), PostgreSQL releases it and
another instance takes over at its next try.

The same connection ``LISTEN``\\ s on :data:`db.outbox.NOTIFY_CHANNEL`, which
every transaction that appends to the outbox notifies, so the holder hears of
other instances' writes at once instead of at its next poll.

SQLite has no such lock and needs none: it serves one process
(:func:`relay_lease` returns ``None``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Self

from sqlalchemy.engine import make_url

from .outbox import NOTIFY_CHANNEL

__all__ = ["APPLICATION_NAME", "RELAY_LOCK_KEY", "RelayLease", "relay_lease"]

logger = logging.getLogger(__name__)

# A fixed 64-bit advisory lock key, derived from a name so it is unlikely to
# collide with another application's keys in the same database.
RELAY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"checkin-realtime/outbox-relay").digest()[:8], "big", signed=True
)
CHECK_TIMEOUT_SECONDS = 5.0
# application_name of the lease connection in pg_stat_activity (unless the DSN sets one).
APPLICATION_NAME = "checkin-realtime relay lease"


def relay_lease(database_url: str) -> RelayLease | None:
    """A lease for ``database_url`` (``postgresql+asyncpg://...``); ``None`` for SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return RelayLease(url.set(drivername="postgresql").render_as_string(hide_password=False))


class RelayLease:
    """The right to relay the outbox, as a PostgreSQL advisory lock on a dedicated connection.

    Args:
        dsn: an asyncpg DSN, ``postgresql://user:password@host:port/db``.
        key: the advisory lock key (64-bit signed).

    The constructor does no I/O. Use ``async with`` to close the connection
    at the end; :meth:`try_acquire` opens it.
    """

    def __init__(self, dsn: str, *, key: int = RELAY_LOCK_KEY) -> None:
        self._dsn = dsn
        self.key = key
        self._conn: Any = None
        self._held = False
        self._on_notify: Callable[[], None] | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock (its connection is alive as far as we know)."""
        return self._held

    @property
    def pid(self) -> int | None:
        """Server process id of the lease connection, or ``None`` when there is none."""
        return None if self._conn is None else int(self._conn.get_server_pid())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def try_acquire(self, *, on_notify: Callable[[], None] | None = None) -> bool:
        """Take the lock if it is free; return whether this process holds it now.

        Args:
            on_notify: called (in the event loop, without arguments) whenever a
                transaction that wrote outbox entries commits, while held.

        Raises:
            OSError, asyncpg.PostgresError: the database is unreachable.
        """
        if self._held:
            return True
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            settings = (
                {} if "application_name" in self._dsn else {"application_name": APPLICATION_NAME}
            )
            self._conn = await asyncpg.connect(self._dsn, server_settings=settings)
            self._conn.add_termination_listener(self._on_terminated)
        if not await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key):
            return False
        self._on_notify = on_notify
        await self._conn.add_listener(NOTIFY_CHANNEL, self._notified)
        self._held = True
        logger.info("this process now relays the outbox (advisory lock %d)", self.key)
        return True

    async def check(self, timeout: float = CHECK_TIMEOUT_SECONDS) -> bool:
        """Ask the lease connection for a sign of life; a silent one loses the lease.

        Returns whether the lease is still held. Never raises.
        """
        if not self._held:
            return False
        try:
            await self._conn.fetchval("SELECT 1", timeout=timeout)
        except Exception as exc:
            self._lost(f"lease connection check failed: {exc!r}")
            await self._discard()
        return self._held

    async def close(self) -> None:
        """Give up the lock and close the connection. Never raises."""
        self._held = False
        await self._discard()

    def _notified(self, *_args: Any) -> None:
        if self._on_notify is not None:
            self._on_notify()

    def _on_terminated(self, _connection: Any) -> None:
        self._lost("lease connection closed")

    def _lost(self, reason: str) -> None:
        if self._held:
            logger.warning("this process stopped relaying the outbox: %s", reason)
        self._held = False

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), CHECK_TIMEOUT_SECONDS)
            except Exception:
                with suppress(Exception):
                    conn.terminate()
