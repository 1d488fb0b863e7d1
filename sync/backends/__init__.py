"""Broker backends for :class:`sync.hub.Hub`, one per file, chosen by URL scheme.

Each implements the public ``broadcaster.BroadcastBackend`` interface.
broadcaster 0.3.1 ships backends of its own; the Redis and PostgreSQL ones lose
events or go silently deaf (see each module), so ours replace them, and its
memory one lives under a private module path. Drivers are imported only when
their scheme is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from broadcaster import BroadcastBackend

__all__ = ["create_backend"]


def create_backend(url: str) -> BroadcastBackend:
    """The backend for ``url``: ``memory://``, ``redis://``/``rediss://`` or ``postgres://``.

    ``postgresql://`` and ``postgresql+asyncpg://`` are accepted as spellings
    of ``postgres://``.

    Raises:
        ValueError: an unknown scheme.
    """
    scheme = urlparse(url).scheme
    if scheme == "memory":
        from .memory import MemoryBackend

        return MemoryBackend(url)
    if scheme in ("redis", "rediss"):
        from .redis import RedisBackend

        return RedisBackend(url)
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        from .postgres import PostgresBackend

        return PostgresBackend(url)
    raise ValueError(
        f"unsupported BROADCAST_URL scheme {scheme!r}; use memory://, redis:// or postgres://"
    )
