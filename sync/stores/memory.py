"""In-process realtime store: an LRU of user states, bounded in users and in bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from ..events import ChangeEvent
from ._sizes import ENTRY_BYTES, estimated_bytes
from .base import DEFAULT_WINDOW, RealtimeStore
from .state import UserState, apply, prime

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_USERS", "MemoryStore"]

DEFAULT_MAX_USERS = 100_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


@dataclass(slots=True)
class _Entry:
    state: UserState
    bytes: int


def _payloads(state: UserState) -> Iterable[object]:
    yield from state.activities
    if state.status is not None:
        yield state.status


def _state_bytes(state: UserState, previous: _Entry | None) -> int:
    """Estimated bytes of ``state``, estimating only the payloads ``previous`` lacks.

    A new state shares its unchanged payload objects with the previous one, so
    one change costs the estimate of what it added and of what it dropped, not
    of the whole window.
    """
    if previous is None:
        return ENTRY_BYTES + sum(estimated_bytes(p) for p in _payloads(state))
    before = {id(p): p for p in _payloads(previous.state)}
    after = {id(p): p for p in _payloads(state)}
    added = sum(estimated_bytes(p) for key, p in after.items() if key not in before)
    dropped = sum(estimated_bytes(p) for key, p in before.items() if key not in after)
    return previous.bytes + added - dropped


class MemoryStore(RealtimeStore):
    """Keeps up to ``max_users`` users and ``max_bytes`` of their state, evicting the least
    recently used.

    A user's bytes are an estimate of its payloads' Python objects (see
    :mod:`sync.stores._sizes`) plus a fixed overhead. An evicted user is simply
    absent: reads fall back to the database and re-prime it, and the relay
    primes it at its next change. A user larger than ``max_bytes`` on its own
    is not kept at all, so the budget holds. URL: ``memory://``.

    Args:
        window: activities kept per user.
        max_users: users kept.
        max_bytes: estimated bytes of state kept, over all users.
    """

    def __init__(
        self,
        *,
        window: int = DEFAULT_WINDOW,
        max_users: int = DEFAULT_MAX_USERS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(window=window)
        self.max_users = max_users
        self.max_bytes = max_bytes
        self._users: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._users)

    @property
    def bytes(self) -> int:
        """Estimated bytes of every state held; at most ``max_bytes``."""
        return self._bytes

    def _put(self, state: UserState) -> None:
        previous = self._users.get(state.user_id)
        entry = _Entry(state, _state_bytes(state, previous))
        self._bytes += entry.bytes - (previous.bytes if previous is not None else 0)
        self._users[state.user_id] = entry
        self._users.move_to_end(state.user_id)
        while self._users and (len(self._users) > self.max_users or self._bytes > self.max_bytes):
            _, evicted = self._users.popitem(last=False)
            self._bytes -= evicted.bytes

    def _state(self, user_id: str) -> UserState | None:
        entry = self._users.get(user_id)
        return None if entry is None else entry.state

    async def apply(self, event: ChangeEvent) -> UserState:
        current = self._state(event.user_id)
        updated = apply(current, event, window=self.window)
        if updated is not current:
            self._put(updated)
        return updated

    async def prime(self, state: UserState) -> None:
        # Kept or replaced, the user was just used.
        self._put(prime(self._state(state.user_id), state))

    async def get(self, user_id: str) -> UserState | None:
        state = self._state(user_id)
        if state is not None:
            self._users.move_to_end(user_id)
        return state

    async def forget(self, user_id: str | None = None) -> None:
        if user_id is None:
            self._users.clear()
            self._bytes = 0
            return
        entry = self._users.pop(user_id, None)
        if entry is not None:
            self._bytes -= entry.bytes
