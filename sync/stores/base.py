"""The realtime store interface: the read model that queries answer from."""

from __future__ import annotations

import abc
from typing import Self

from ..events import ChangeEvent
from .state import UserState

__all__ = ["DEFAULT_WINDOW", "RealtimeStore", "StoreUnavailable"]

# Activities kept per user.
DEFAULT_WINDOW = 100


class StoreUnavailable(Exception):
    """The store could not be reached; callers fall back to the database.

    Backends raise it for outages only (connection refused or lost, a
    timeout, an open circuit breaker, a server refusing to serve); anything
    else they raise is a bug, which callers let through.
    """


class RealtimeStore(abc.ABC):
    """Per-user :class:`UserState`, updated idempotently by change sequence.

    Constructors do no I/O; :meth:`connect` and :meth:`disconnect` (or
    ``async with``) open and close connections.

    Args:
        window: activities kept per user, newest first.

    Attributes:
        shared: whether every instance reads and writes the same data (Redis),
            or only this process sees it (memory). Only the relaying process
            keeps an unshared store current, so others must not read it.
    """

    shared = False

    def __init__(self, *, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open connections."""

    async def disconnect(self) -> None:  # noqa: B027 - optional hook
        """Close connections."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    @abc.abstractmethod
    async def apply(self, event: ChangeEvent) -> UserState:
        """Apply one change. Applying an event twice, or an older one, changes nothing.

        Returns:
            The user's state afterwards. It is not ``primed`` when the store did
            not hold the user's earlier changes (lost or evicted): the caller
            should prime it from the database.

        Raises:
            StoreUnavailable: the store could not be written.
        """

    @abc.abstractmethod
    async def prime(self, state: UserState) -> None:
        """Install a database snapshot unless the store already holds a newer state.

        Raises:
            StoreUnavailable: the store could not be written.
        """

    @abc.abstractmethod
    async def get(self, user_id: str) -> UserState | None:
        """What the store holds for ``user_id``, or ``None``.

        Raises:
            StoreUnavailable: the store could not be read.
        """

    @abc.abstractmethod
    async def forget(self, user_id: str | None = None) -> None:
        """Drop one user's state, or every user's when ``user_id`` is ``None``.

        Raises:
            StoreUnavailable: the store could not be written.
        """

    async def ping(self) -> bool:
        """Whether the store answers right now."""
        return True
