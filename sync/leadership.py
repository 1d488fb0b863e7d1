"""Relay leadership: which process relays the outbox, and what taking over costs.

SQLite serves one process, which always leads. On PostgreSQL several instances
share the database and only the holder of a :class:`db.leases.RelayLease`
relays; the others try again now and then. Taking the lease over has one side
effect, made explicit here as the ``on_takeover`` hook: a store that only this
process sees (memory) may have missed changes another holder relayed, so the
composition root passes a hook that wipes it (:func:`store_reset`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from db.leases import RelayLease

from .stores import RealtimeStore

__all__ = ["DEFAULT_CHECK_INTERVAL", "Leadership", "store_reset"]

logger = logging.getLogger(__name__)

# Seconds between liveness checks of a held lease's connection.
DEFAULT_CHECK_INTERVAL = 5.0

Takeover = Callable[[], Awaitable[None]]


def store_reset(store: RealtimeStore | None) -> Takeover | None:
    """The takeover hook for ``store``: forget everything if only this process sees it."""
    if store is None or store.shared:
        return None
    return store.forget


class Leadership:
    """Whether this process relays, kept current by :meth:`ensure`.

    Args:
        lease: the PostgreSQL lease, or ``None`` when this process is the only
            one (SQLite) and always leads. The caller opens and closes it.
        check_interval: seconds between liveness checks of a held lease.
        on_takeover: awaited each time this process starts to lead after
            another may have led (the lease was newly taken).
    """

    def __init__(
        self,
        lease: RelayLease | None = None,
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        on_takeover: Takeover | None = None,
    ) -> None:
        self._lease = lease
        self.check_interval = check_interval
        self._on_takeover = on_takeover
        self._last_check = 0.0

    @property
    def leading(self) -> bool:
        """Whether this process relays now: no lease is needed, or it holds the lease."""
        return self._lease is None or self._lease.held

    async def ensure(self, *, on_notify: Callable[[], None] | None = None) -> bool:
        """Take the lease if it is free, check a held one now and then; return :attr:`leading`.

        Args:
            on_notify: called whenever another instance commits outbox entries,
                while this process leads (see :meth:`RelayLease.try_acquire`).

        A database that cannot be reached counts as not leading; this never
        raises for it.
        """
        if self._lease is None:
            return True
        loop = asyncio.get_running_loop()
        if self._lease.held:
            if loop.time() - self._last_check >= self.check_interval:
                self._last_check = loop.time()
                await self._lease.check()
            return self._lease.held
        try:
            acquired = await self._lease.try_acquire(on_notify=on_notify)
        except Exception as exc:
            # Connection errors of asyncpg share no base class with OSError: any
            # failure to reach the database means "not leading, try again later".
            logger.warning("could not try the relay lease: %r", exc)
            return False
        self._last_check = loop.time()
        if acquired and self._on_takeover is not None:
            await self._on_takeover()
        return acquired
