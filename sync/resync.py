"""Rebuild the realtime store from the database.

For disaster recovery: in normal operation the store converges by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from db import SessionFactory, snapshots

from .stores import RealtimeStore, UserState
from .stores.state import from_snapshot

__all__ = ["prime_user", "resync"]

logger = logging.getLogger(__name__)


async def resync(
    *, sessions: SessionFactory, store: RealtimeStore, user_ids: Sequence[str] | None = None
) -> int:
    """Replace the store's state of each user with a fresh database snapshot.

    Args:
        user_ids: the users to rebuild; ``None`` for every user with a change.

    Returns:
        The number of users rebuilt.

    Raises:
        StoreUnavailable: the store cannot be written.
    """
    if user_ids is None:
        async with sessions() as session:
            user_ids = await snapshots.user_ids(session)
    for user_id in user_ids:
        async with sessions() as session:
            snapshot = await snapshots.load(session, user_id=user_id, limit=store.window)
        await store.forget(user_id)
        await store.prime(from_snapshot(snapshot))
    logger.info("resynced %d users", len(user_ids))
    return len(user_ids)


async def prime_user(*, sessions: SessionFactory, store: RealtimeStore, user_id: str) -> UserState:
    """Install a database snapshot of ``user_id`` unless the store holds a newer state.

    Returns:
        The snapshot's state.

    Raises:
        StoreUnavailable: the store cannot be written.
    """
    async with sessions() as session:
        snapshot = await snapshots.load(session, user_id=user_id, limit=store.window)
    state = from_snapshot(snapshot)
    await store.prime(state)
    return state
