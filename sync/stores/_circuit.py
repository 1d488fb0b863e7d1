"""A circuit breaker: after a store connection failure, fail fast for a while.

Without it, while Redis is frozen or unreachable behind a silent network,
every read would wait for a socket timeout before falling back to the
database, and every relay attempt too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Circuit"]


class Circuit:
    """Closed: calls go through. Open: calls are refused for ``cooldown`` seconds.

    After the cooldown one call (the trial) goes through while the others are
    still refused; its success closes the circuit, its failure opens it again.

    Args:
        cooldown: seconds the circuit stays open after a failure.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(self, cooldown: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self._clock = clock
        self._open_until: float | None = None
        self._trial = False

    @property
    def closed(self) -> bool:
        return self._open_until is None

    def allow(self) -> bool:
        """Whether a call may go now; a call allowed after the cooldown is the trial.

        Every allowed call must end with :meth:`succeeded`, :meth:`failed` or
        :meth:`abandoned`.
        """
        if self._open_until is None:
            return True
        if self._trial or self._clock() < self._open_until:
            return False
        self._trial = True
        return True

    def succeeded(self) -> None:
        self._open_until = None
        self._trial = False

    def failed(self) -> None:
        self._open_until = self._clock() + self.cooldown
        self._trial = False

    def abandoned(self) -> None:
        """The call ended without telling (e.g. cancelled): let another trial go."""
        self._trial = False
