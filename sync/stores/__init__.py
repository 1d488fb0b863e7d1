"""Realtime store backends, one per file, chosen by URL scheme."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from .base import DEFAULT_WINDOW, RealtimeStore, StoreUnavailable
from .state import StorePage, UserState

__all__ = [
    "DEFAULT_WINDOW",
    "RealtimeStore",
    "StorePage",
    "StoreUnavailable",
    "UserState",
    "create_store",
]


def create_store(
    url: str, *, window: int = DEFAULT_WINDOW, max_bytes: int | None = None
) -> RealtimeStore | None:
    """The store for ``url``; ``None`` for an empty URL (queries then read the database).

    Schemes: ``memory://`` (``?max_users=N``), ``redis://`` and ``rediss://``.
    Drivers are imported only when their scheme is used.

    Args:
        url: the store's URL (``REALTIME_URL``).
        window: activities kept per user.
        max_bytes: estimated bytes a ``memory://`` store keeps (``STORE_MAX_BYTES``);
            ``None`` for its default. Redis bounds itself with ``maxmemory``.

    Raises:
        ValueError: an unknown scheme.
    """
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme == "memory":
        from .memory import DEFAULT_MAX_BYTES, DEFAULT_MAX_USERS, MemoryStore

        query = parse_qs(parsed.query)
        max_users = int(query.get("max_users", [DEFAULT_MAX_USERS])[0])
        return MemoryStore(
            window=window,
            max_users=max_users,
            max_bytes=DEFAULT_MAX_BYTES if max_bytes is None else max_bytes,
        )
    if parsed.scheme in ("redis", "rediss"):
        from .redis import RedisStore

        return RedisStore(url, window=window)
    raise ValueError(
        f"unsupported REALTIME_URL scheme {parsed.scheme!r}; use memory:// or redis://"
    )
