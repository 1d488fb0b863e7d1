"""Redis realtime store: one JSON value per user, updated by optimistic transactions.

Every write reads the user's key under ``WATCH``, computes the new state with
the pure rules of :mod:`sync.stores.state`, and writes it in ``MULTI``/``EXEC``.
If another writer (another instance's relay, a reader priming the store)
changed the key meanwhile, ``EXEC`` does nothing and the write starts over
from the new value. The rules ignore an event at or below the stored ``seq``
and a snapshot older than it, so an older version never overwrites a newer
one, whatever order instances apply in.

Keys are ``{prefix}user:{user_id}`` and never expire: size Redis with a
``maxmemory-policy`` such as ``allkeys-lru``. An evicted user is just absent;
reads fall back to the database and prime the store again.

An unreachable Redis must cost little: sockets time out after
:data:`SOCKET_TIMEOUT_SECONDS` (redis-py's default is 5 s), and after a
connection failure a circuit breaker refuses calls for
:data:`COOLDOWN_SECONDS` (reads fall back to the database at once) before
letting one trial call through.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from redis import asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._redis_url import split_prefix
from ..events import ChangeEvent
from ._circuit import Circuit
from .base import DEFAULT_WINDOW, RealtimeStore, StoreUnavailable
from .state import UserState, apply, prime

__all__ = ["COOLDOWN_SECONDS", "DEFAULT_PREFIX", "SOCKET_TIMEOUT_SECONDS", "RedisStore"]

DEFAULT_PREFIX = "checkin:"
# Optimistic attempts per write before giving up; writers of one user are few
# (the relay and occasional primes), so a handful of conflicts is already rare.
MAX_ATTEMPTS = 16
PING_TIMEOUT_SECONDS = 2.0
# Connect and read timeouts unless the URL sets socket_timeout / socket_connect_timeout.
# A store operation takes about a millisecond; a second is a lost Redis.
SOCKET_TIMEOUT_SECONDS = 1.0
COOLDOWN_SECONDS = 1.0
# Failures that say Redis is away, not that one operation went wrong.
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


def _escape_glob(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class RedisStore(RealtimeStore):
    """Per-user state in Redis. URL: ``redis://host:port/db?prefix=...``.

    Args:
        url: a redis-py URL; its ``prefix`` parameter (default ``checkin:``)
            starts every key, so deployments and test runs can share one Redis.
        client: a pre-built ``redis.asyncio.Redis`` instead of ``url`` (the
            caller closes it).
        prefix: overrides the URL's ``prefix``.
        window: activities kept per user.
        cooldown: seconds calls are refused after a connection failure.

    Raises (from every method but :meth:`ping`):
        StoreUnavailable: Redis could not be reached or kept failing.
    """

    shared = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        prefix: str | None = None,
        window: int = DEFAULT_WINDOW,
        cooldown: float = COOLDOWN_SECONDS,
    ) -> None:
        super().__init__(window=window)
        if url is None and client is None:
            raise ValueError("give a url or a client")
        url_prefix = DEFAULT_PREFIX
        if url is not None:
            url, url_prefix = split_prefix(url, DEFAULT_PREFIX)
        self._url = url
        self._given_client = client
        self.prefix = url_prefix if prefix is None else prefix
        self._client: redis.Redis | None = client
        self.circuit = Circuit(cooldown)

    def key(self, user_id: str) -> str:
        """The Redis key holding ``user_id``'s state."""
        return f"{self.prefix}user:{user_id}"

    async def connect(self) -> None:
        """Create the client. Connections open on first use, so Redis may still be down."""
        if self._client is None:
            assert self._url is not None
            # Timeouts in the URL's query win over these defaults.
            self._client = redis.Redis.from_url(
                self._url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            )

    async def disconnect(self) -> None:
        if self._client is not None and self._client is not self._given_client:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            raise StoreUnavailable("the Redis store is not connected")
        return self._client

    async def apply(self, event: ChangeEvent) -> UserState:
        return await self._update(
            event.user_id, lambda current: apply(current, event, window=self.window)
        )

    async def prime(self, state: UserState) -> None:
        await self._update(state.user_id, lambda current: prime(current, state))

    @asynccontextmanager
    async def _guarded(self, what: str) -> AsyncIterator[None]:
        """Run a Redis call through the circuit; its failures become :class:`StoreUnavailable`."""
        if not self.circuit.allow():
            raise StoreUnavailable(f"Redis store {what} skipped: Redis failed moments ago")
        try:
            yield
        except _CONNECTION_ERRORS as exc:
            self.circuit.failed()
            raise StoreUnavailable(f"Redis store {what} failed: {exc!r}") from exc
        except RedisError as exc:
            self.circuit.succeeded()
            raise StoreUnavailable(f"Redis store {what} failed: {exc!r}") from exc
        except BaseException:
            self.circuit.abandoned()
            raise
        self.circuit.succeeded()

    async def _update(
        self, user_id: str, rule: Callable[[UserState | None], UserState]
    ) -> UserState:
        key = self.key(user_id)
        async with self._guarded("write"):
            async with self.client.pipeline(transaction=True) as pipe:
                for _ in range(MAX_ATTEMPTS):
                    try:
                        await pipe.watch(key)
                        current = _decode(await pipe.get(key))
                        updated = rule(current)
                        if updated is current:
                            await pipe.unwatch()  # type: ignore[no-untyped-call]
                            return updated
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, json.dumps(updated.to_json(), separators=(",", ":")))
                        await pipe.execute()
                        return updated
                    except WatchError:
                        continue
        raise StoreUnavailable(f"gave up writing {key!r} after {MAX_ATTEMPTS} conflicts")

    async def get(self, user_id: str) -> UserState | None:
        async with self._guarded("read"):
            raw = await self.client.get(self.key(user_id))
        return _decode(raw)

    async def forget(self, user_id: str | None = None) -> None:
        async with self._guarded("delete"):
            if user_id is not None:
                await self.client.delete(self.key(user_id))
                return
            batch: list[Any] = []
            async for key in self.client.scan_iter(match=_escape_glob(self.prefix) + "user:*"):
                batch.append(key)
                if len(batch) >= 500:
                    await self.client.delete(*batch)
                    batch.clear()
            if batch:
                await self.client.delete(*batch)

    async def ping(self, timeout: float = PING_TIMEOUT_SECONDS) -> bool:
        """Whether Redis answers ``PING`` within ``timeout`` seconds; never raises.

        It bypasses the circuit breaker: readiness reports what Redis does now.
        """
        try:
            return bool(await asyncio.wait_for(self.client.ping(), timeout))
        except (RedisError, StoreUnavailable, OSError, TimeoutError):
            return False


def _decode(raw: bytes | str | None) -> UserState | None:
    if raw is None:
        return None
    data: dict[str, Any] = json.loads(raw)
    return UserState.from_json(data)
