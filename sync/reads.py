"""Reads: from the realtime store when it holds the answer, from the database otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from db import AlertLevel, SessionFactory, activities, outbox, overview, snapshots, statuses
from db.payloads import ActivityPayload, StatusPayload
from db.validation import check_user_id

from .stores import RealtimeStore, StoreUnavailable, UserState
from .stores.state import from_snapshot, page

__all__ = ["ActivityPage", "Reader", "StatusPage"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActivityPage:
    """Activity payloads, newest first, whether more follow, and ``source``: store or db."""

    items: Sequence[ActivityPayload]
    has_next: bool
    source: str


@dataclass(frozen=True, slots=True)
class StatusPage:
    """Status payloads, most urgent first, and whether more follow."""

    items: Sequence[StatusPayload]
    has_next: bool


class Reader:
    """Answers queries. A store outage is logged and answered from the database.

    Only :class:`~sync.stores.StoreUnavailable` counts as an outage. Anything
    else a store raises (a state it cannot decode, a broken rule) is a bug
    and propagates: answering it from the database would hide it.

    Args:
        store_current: says whether the store may be read right now; an
            unshared (in-process) store is current only in the process that
            relays, see :attr:`sync.stores.RealtimeStore.shared`.
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        store: RealtimeStore | None,
        store_current: Callable[[], bool] = lambda: True,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._store_current = store_current

    async def _cached(self, user_id: str) -> UserState | None:
        if self._store is None or not self._store_current():
            return None
        try:
            return await self._store.get(user_id)
        except StoreUnavailable as exc:
            logger.warning("realtime store read failed for user %r: %r", user_id, exc)
            return None

    async def _prime(self, user_id: str) -> UserState | None:
        """Load a snapshot from the database and install it in the store."""
        if self._store is None or not self._store_current():
            return None
        async with self._sessions() as session:
            snapshot = await snapshots.load(session, user_id=user_id, limit=self._store.window)
        state = from_snapshot(snapshot)
        try:
            await self._store.prime(state)
        except StoreUnavailable as exc:
            logger.warning("realtime store prime failed for user %r: %r", user_id, exc)
        return state

    async def user_status(self, user_id: str) -> StatusPayload | None:
        """The status payload of ``user_id`` or ``None`` when the user has none.

        Raises:
            db.InvalidInput: an empty or over-long user id.
        """
        check_user_id(user_id)
        state = await self._cached(user_id)
        if state is None and self._store is not None:
            state = await self._prime(user_id)
        if state is not None and state.status_known:
            return state.status
        async with self._sessions() as session:
            row = await statuses.get(session, user_id=user_id)
        return None if row is None else outbox.status_payload(row)

    async def recent_activities(
        self,
        user_id: str,
        *,
        first: int,
        after: activities.ActivityKey | None,
        types: Sequence[str] | None,
    ) -> ActivityPage:
        """One page of ``user_id``'s activities; arguments as :func:`db.activities.recent`.

        Raises:
            db.InvalidInput: as :func:`db.activities.recent`.
        """
        # Validate before touching the store, so bad input fails the same way on both paths.
        check_user_id(user_id)
        activities.check_page(first, types)
        state = await self._cached(user_id)
        if state is None and self._store is not None:
            state = await self._prime(user_id)
        if state is not None:
            hit = page(state, first=first, after=after, types=types)
            if hit is not None:
                return ActivityPage(items=hit.items, has_next=hit.has_next, source="store")
        async with self._sessions() as session:
            items, has_next = await activities.recent_payloads(
                session, user_id=user_id, first=first, after=after, types=types
            )
        return ActivityPage(items=items, has_next=has_next, source="db")

    async def activity_feed(
        self,
        *,
        first: int,
        after: activities.ActivityKey | None,
        types: Sequence[str] | None,
    ) -> ActivityPage:
        """A page of every user's activities, from the database."""
        async with self._sessions() as session:
            rows = await activities.feed(session, first=first, after=after, types=types)
        return ActivityPage(
            items=[outbox.activity_payload(r) for r in rows.rows],
            has_next=rows.has_next,
            source="db",
        )

    async def user_statuses(
        self,
        *,
        first: int,
        after: overview.StatusKey | None,
        alert_levels: Sequence[AlertLevel] | None,
        overdue: bool | None,
    ) -> StatusPage:
        """A page of every user's status, from the database; as :func:`db.overview.page`."""
        async with self._sessions() as session:
            rows = await overview.page(
                session, first=first, after=after, alert_levels=alert_levels, overdue=overdue
            )
        return StatusPage(
            items=[outbox.status_payload(r) for r in rows.rows], has_next=rows.has_next
        )
