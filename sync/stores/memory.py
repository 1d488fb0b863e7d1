"""In-process realtime store: a bounded LRU of user states."""

from __future__ import annotations

from collections import OrderedDict

from ..events import ChangeEvent
from .base import DEFAULT_WINDOW, RealtimeStore
from .state import UserState, apply, prime

__all__ = ["DEFAULT_MAX_USERS", "MemoryStore"]

DEFAULT_MAX_USERS = 100_000


class MemoryStore(RealtimeStore):
    """Keeps up to ``max_users`` users, evicting the least recently used.

    An evicted user is simply absent: reads fall back to the database and
    re-prime it. URL: ``memory://``.
    """

    def __init__(self, *, window: int = DEFAULT_WINDOW, max_users: int = DEFAULT_MAX_USERS) -> None:
        super().__init__(window=window)
        self.max_users = max_users
        self._users: OrderedDict[str, UserState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._users)

    def _put(self, state: UserState) -> None:
        self._users[state.user_id] = state
        self._users.move_to_end(state.user_id)
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)

    async def apply(self, event: ChangeEvent) -> UserState:
        current = self._users.get(event.user_id)
        updated = apply(current, event, window=self.window)
        if updated is not current:
            self._put(updated)
        return updated

    async def prime(self, state: UserState) -> None:
        current = self._users.get(state.user_id)
        self._put(prime(current, state))

    async def get(self, user_id: str) -> UserState | None:
        state = self._users.get(user_id)
        if state is not None:
            self._users.move_to_end(user_id)
        return state

    async def forget(self, user_id: str | None = None) -> None:
        if user_id is None:
            self._users.clear()
        else:
            self._users.pop(user_id, None)
