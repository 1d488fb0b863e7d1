"""Keeping the realtime store current with the outbox, also while publishing is held back.

The relay applies each entry to the store before it publishes it, so a
subscriber never learns of a change that a query cannot read yet. When
publishing fails (the broker is away), the entries behind the failed one
wait for their turn on the broker, but not for the store: :class:`StoreMirror`
applies them ahead, once each, so queries keep seeing every committed write.

A store that no longer holds a user's earlier changes (a Redis restarted
empty, an evicted user) cannot apply the next one to a known state; the
mirror then primes that user from a database snapshot, so the store
converges by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from db import OutboxEntry, SessionFactory, outbox

from .events import ChangeEvent
from .resync import prime_user
from .stores import RealtimeStore, StoreUnavailable

__all__ = ["StoreMirror"]

logger = logging.getLogger(__name__)


class StoreMirror:
    """Applies outbox entries to the store in each user's ``seq`` order.

    Args:
        sessions: database session factory (for snapshots and held-back entries).
        store: the realtime store, or ``None``: then every method is a no-op.
        batch_size: entries read at most when catching up behind a failure.
    """

    def __init__(
        self, *, sessions: SessionFactory, store: RealtimeStore | None, batch_size: int = 500
    ) -> None:
        self._sessions = sessions
        self._store = store
        self.batch_size = batch_size
        # Per user, the last seq applied to the store ahead of publishing.
        self._ahead: dict[str, int] = {}

    async def apply(self, event: ChangeEvent) -> None:
        """Apply one change; prime the user from the database if the store lost them.

        Raises:
            Exception: whatever the store raises (the caller retries the entry).
        """
        if self._store is None:
            return
        state = await self._store.apply(event)
        if not state.primed:
            await prime_user(sessions=self._sessions, store=self._store, user_id=event.user_id)

    def caught_up(self, user_id: str) -> None:
        """Every entry of ``user_id`` applied ahead has now been published too."""
        self._ahead.pop(user_id, None)

    async def apply_ahead(self, user_id: str, entries: Sequence[OutboxEntry]) -> int:
        """Apply entries whose publishing is held back, so that reads stay current.

        Entries held back by a retry time are not claimed, so these may follow
        a gap: the store then primes the user from the database. Each entry is
        applied ahead once; it is applied again (a no-op) when it is
        published. A store that fails here is left alone: the entry's own
        attempt retries.

        Returns:
            The highest seq of the user now applied ahead (0: none).
        """
        done = self._ahead.get(user_id, 0)
        if self._store is None:
            return done
        for entry in entries:
            if entry.seq <= done:
                continue
            try:
                await self.apply(ChangeEvent.from_entry(entry))
            except (StoreUnavailable, SQLAlchemyError, OSError) as exc:
                # An outage of the store, or of the database while priming: the
                # entry's own attempt retries. Anything else is a bug and surfaces.
                logger.debug("store update ahead of publishing failed: %r", exc)
                break
            self._ahead[user_id] = done = entry.seq
        return done

    async def apply_held_back(self, failed: OutboxEntry) -> list[int]:
        """Apply every entry held back behind ``failed``, claimed this round or not.

        Entries committed while the round ran were held back by the failure
        without being claimed; their writers are waiting for them. Once they
        are in the store those writers need not wait any longer: their change
        is readable, and it will be published when its turn comes.

        Returns:
            The outbox ids of the entries now in the store.
        """
        if self._store is None:
            return []
        try:
            async with self._sessions() as session:
                entries = await outbox.after(
                    session, user_id=failed.user_id, seq=failed.seq, limit=self.batch_size
                )
        except Exception as exc:
            # Only an optimisation: the entries are applied when they are published.
            logger.warning("could not read the entries held back behind %s: %r", failed.id, exc)
            return []
        applied = await self.apply_ahead(failed.user_id, entries)
        return [entry.id for entry in entries if entry.seq <= applied]
