"""Who holds how many WebSockets and operations on this instance, and the caps on them.

One :class:`Admission` per app (built by the lifespan) counts:

* every open WebSocket (``MAX_CONNECTIONS``; ``/readyz`` reports ``capacity``);
* sockets not yet past ``connection_init``, per client address
  (``MAX_PENDING_SOCKETS_PER_ADDRESS``);
* authenticated sockets per principal (``MAX_SOCKETS_PER_USER``, or
  ``MAX_SOCKETS_PER_SERVICE`` for roles ``service`` and ``admin``);
* operations running at once per socket (``MAX_WS_OPERATIONS``) and per principal
  across all its sockets (``MAX_SUBSCRIPTIONS_PER_USER`` / ``_SERVICE``).

Each socket takes a :class:`Seat`; each operation a :class:`Hold` from it. Both
release idempotently, and closing a seat releases whatever it still holds, so
no path (stop, error, cancellation, token expiry) can leave a count behind.
A cap of 0 turns that cap off. The counts are per process: each instance
enforces its caps on its own.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple

from .auth import Principal, Role
from .settings import SecuritySettings

__all__ = ["Admission", "Hold", "Refused", "Seat"]


class Refused(Exception):
    """A cap is reached. ``str(error)`` names the setting and is safe to show the client."""


class _Tally:
    """Counts per key; keys at zero are dropped, so departed principals cost nothing."""

    def __init__(self) -> None:
        self._counts: dict[Hashable, int] = {}

    def get(self, key: Hashable) -> int:
        return self._counts.get(key, 0)

    def add(self, key: Hashable) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1

    def remove(self, key: Hashable) -> None:
        left = self._counts[key] - 1
        if left:
            self._counts[key] = left
        else:
            del self._counts[key]


def _over(count: int, cap: int) -> bool:
    return cap > 0 and count >= cap


def _key(principal: Principal) -> tuple[str, str]:
    return (principal.role.value, principal.user_id)


class Admission:
    """The caps of ``settings`` and the counts they apply to. No I/O; not thread-safe
    (one event loop owns it).

    Args:
        settings: the ``MAX_*`` caps listed in the module docstring.
    """

    def __init__(self, settings: SecuritySettings) -> None:
        self.settings = settings
        self.connections = 0
        self._pending = _Tally()
        self._sockets = _Tally()
        self._operations = _Tally()

    @property
    def full(self) -> bool:
        """Whether a new socket would be refused for ``MAX_CONNECTIONS``."""
        return _over(self.connections, self.settings.max_connections)

    def pending(self, address: str) -> int:
        """Sockets from ``address`` not yet past ``connection_init``."""
        return self._pending.get(address)

    def sockets(self, principal: Principal) -> int:
        """Authenticated sockets ``principal`` holds."""
        return self._sockets.get(_key(principal))

    def operations(self, principal: Principal) -> int:
        """Operations ``principal`` runs, over all its sockets."""
        return self._operations.get(_key(principal))

    def open_socket(self, address: str | None) -> Seat:
        """Count a new socket from ``address`` (``None``: unknown, not capped per address).

        Raises:
            Refused: ``MAX_CONNECTIONS`` or ``MAX_PENDING_SOCKETS_PER_ADDRESS`` is reached.
        """
        cap = self.settings.max_connections
        if _over(self.connections, cap):
            raise Refused(f"too many connections, try again later (MAX_CONNECTIONS={cap})")
        per_address = self.settings.max_pending_sockets_per_address
        if address is not None and _over(self._pending.get(address), per_address):
            raise Refused(
                "too many sockets from this address awaiting connection_init "
                f"(MAX_PENDING_SOCKETS_PER_ADDRESS={per_address})"
            )
        return Seat(self, address)

    def _caps(self, principal: Principal) -> _Caps:
        settings = self.settings
        if principal.role is Role.USER:
            return _Caps(settings.max_sockets_per_user, settings.max_subscriptions_per_user, "USER")
        # Services and admins fan out for many users: the dashboard backend, ops tools.
        return _Caps(
            settings.max_sockets_per_service, settings.max_subscriptions_per_service, "SERVICE"
        )


class _Caps(NamedTuple):
    sockets: int
    operations: int
    suffix: str


class Hold:
    """One running operation, counted for its socket and its principal until released."""

    def __init__(self, seat: Seat) -> None:
        self._seat: Seat | None = seat

    def release(self) -> None:
        """Stop counting it; calling again does nothing."""
        seat, self._seat = self._seat, None
        if seat is not None:
            seat._release(self)


class Seat:
    """One socket's place in :class:`Admission`. Get it from :meth:`Admission.open_socket`."""

    def __init__(self, admission: Admission, address: str | None) -> None:
        self._admission = admission
        self._address = address
        self._principal: tuple[str, str] | None = None
        self._operation_cap = (0, "")
        self._holds: set[Hold] = set()
        self._open = True
        admission.connections += 1
        if address is not None:
            admission._pending.add(address)

    def authenticate(self, principal: Principal) -> None:
        """Count the socket for ``principal`` instead of for its address.

        Raises:
            Refused: ``principal`` already holds ``MAX_SOCKETS_PER_USER`` (or
                ``_SERVICE``) sockets; the seat stays pending until closed.
        """
        admission = self._admission
        key = _key(principal)
        caps = admission._caps(principal)
        if _over(admission._sockets.get(key), caps.sockets):
            setting = f"MAX_SOCKETS_PER_{caps.suffix}"
            raise Refused(f"too many sockets for this principal ({setting}={caps.sockets})")
        self._unpend()
        self._principal = key
        self._operation_cap = caps.operations, f"MAX_SUBSCRIPTIONS_PER_{caps.suffix}"
        admission._sockets.add(key)

    def hold_operation(self) -> Hold:
        """Count one more operation of this socket's principal.

        Raises:
            Refused: the socket runs ``MAX_WS_OPERATIONS`` operations, or its
                principal ``MAX_SUBSCRIPTIONS_PER_USER`` (or ``_SERVICE``).
        """
        admission = self._admission
        assert self._principal is not None, "an operation before connection_init"
        per_socket = admission.settings.max_ws_operations
        if _over(len(self._holds), per_socket):
            raise Refused(
                f"subscription limit reached: at most {per_socket} operations at once "
                f"per socket (MAX_WS_OPERATIONS={per_socket})"
            )
        cap, name = self._operation_cap
        if _over(admission._operations.get(self._principal), cap):
            raise Refused(
                f"subscription limit reached: at most {cap} operations at once per "
                f"principal on this instance ({name}={cap})"
            )
        hold = Hold(self)
        self._holds.add(hold)
        admission._operations.add(self._principal)
        return hold

    def close(self) -> None:
        """Release the socket and every operation it still holds; calling again does nothing."""
        if not self._open:
            return
        for hold in list(self._holds):
            hold.release()
        self._open = False
        self._unpend()
        if self._principal is not None:
            self._admission._sockets.remove(self._principal)
            self._principal = None
        self._admission.connections -= 1

    def _unpend(self) -> None:
        if self._address is not None:
            self._admission._pending.remove(self._address)
            self._address = None

    def _release(self, hold: Hold) -> None:
        self._holds.discard(hold)
        assert self._principal is not None
        self._admission._operations.remove(self._principal)
