"""Writes as a unit of work: one transaction, its outbox entries, and read-your-writes.

A mutation writes through :meth:`Writer.transaction`::

    async with writer.transaction() as session:
        row = await activities.add(session, user_id=..., type=...)

The block's changes and their outbox entries commit together. After the
commit the writer wakes the relay and waits (up to ``timeout``) until the
entries are in the store and published, so a query right after the mutation
sees it. No step can be forgotten: there is nothing to call but the block.

Waiting never fails the write: the change is committed, and the relay
publishes it whenever it can.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from db import SessionFactory, outbox

from .leadership import Leadership
from .trace_context import current_trace_parent

__all__ = ["Waiters", "Writer"]

logger = logging.getLogger(__name__)

# Polling a relay in another process: first interval and cap, in seconds.
POLL_FIRST = 0.01
POLL_MAX = 0.1


class Waiters:
    """Futures of writers waiting for outbox entries, resolved by the relay of this process."""

    def __init__(self) -> None:
        self._futures: dict[int, list[asyncio.Future[bool]]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self._futures)

    async def wait(
        self,
        entry_ids: Sequence[int],
        *,
        timeout: float,
        registered: Callable[[], None] | None = None,
    ) -> bool:
        """Wait until every entry is resolved; ``True`` only if all were published in time.

        Args:
            registered: called once the waits are registered, before waiting
                (to wake the relay without a window in which it could resolve
                an entry nobody is waiting for yet).
        """
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in entry_ids]
        for entry_id, future in zip(entry_ids, futures, strict=True):
            self._futures[entry_id].append(future)
        if registered is not None:
            registered()
        try:
            results = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except TimeoutError:
            return False
        finally:
            for entry_id, future in zip(entry_ids, futures, strict=True):
                self._discard(entry_id, future)
        return all(results)

    def resolve(self, entry_ids: Iterable[int], ok: bool) -> None:
        """Tell the writers of these entries whether they were published (``ok``)."""
        for entry_id in entry_ids:
            for future in self._futures.pop(entry_id, ()):
                if not future.done():
                    future.set_result(ok)

    def release_all(self) -> None:
        """Free every waiting writer with ``False`` (the relay is stopping)."""
        self.resolve(list(self._futures), False)

    def _discard(self, entry_id: int, future: asyncio.Future[bool]) -> None:
        waiting = self._futures.get(entry_id)
        if waiting and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._futures[entry_id]


class Writer:
    """Opens write transactions and waits for their entries to be relayed.

    Args:
        sessions: database session factory.
        leadership: tells whether this process's relay is the one to wait for.
        waiters: where this process's relay resolves published entries.
        wake: asks this process's relay for a round now.
        timeout: seconds to wait after a commit (``WRITE_WAIT``); 0 only wakes
            the relay.
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        leadership: Leadership,
        waiters: Waiters,
        wake: Callable[[], None],
        timeout: float,
    ) -> None:
        self._sessions = sessions
        self._leadership = leadership
        self._waiters = waiters
        self._wake = wake
        self.timeout = timeout

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits when the block ends without an error.

        After the commit, waits up to ``timeout`` for the entries the block
        appended to the outbox; an error in the block rolls everything back.
        """
        async with self._sessions.begin() as session:
            outbox.carry_trace(session, current_trace_parent())
            yield session
            entry_ids = outbox.written(session)
        if entry_ids:
            await self.wait_published(entry_ids, timeout=self.timeout)

    async def wait_published(self, entry_ids: Sequence[int], *, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until these entries have been relayed.

        Returns ``True`` when all were published, ``False`` on timeout or when
        an attempt failed (the entry stays pending and is retried). Never raises.

        When another process relays, this polls the entries' ``published_at``
        instead, every 10 ms growing to 100 ms.
        """
        entry_ids = tuple(entry_ids)
        if timeout <= 0:
            self._wake()
            return False
        if not self._leadership.leading:
            return await self._poll(entry_ids, timeout=timeout)
        return await self._waiters.wait(entry_ids, timeout=timeout, registered=self._wake)

    async def _poll(self, entry_ids: Sequence[int], *, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = POLL_FIRST
        while True:
            try:
                async with self._sessions() as session:
                    waiting = await outbox.unpublished(session, entry_ids=entry_ids)
            except Exception as exc:
                # The write is committed; a database that cannot answer now only
                # ends the wait early.
                logger.warning("could not check whether entries were published: %r", exc)
                return False
            if not waiting:
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.sleep(min(interval, left))
            interval = min(interval * 2, POLL_MAX)
