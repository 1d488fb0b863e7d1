"""Per-user read-model state and the pure rules that update it.

Backends store :class:`UserState` values and call :func:`apply` and :func:`prime`;
the rules live here once so that every backend behaves the same.

Rules:

* ``seq`` is the last change-sequence number applied. An event with a
  ``seq`` at or below it is a no-op, so applying twice changes nothing.
* The state is *primed* when its activity window and its status are known to
  equal the database as of ``seq``. Priming happens from a database snapshot,
  or for free when a user's first change (``seq == 1``) arrives.
* A gap (an event more than one ahead) drops what can no longer be trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, assert_never

from db import OutboxKind, outbox
from db.activities import ActivityKey
from db.payloads import ActivityPayload, StatusPayload
from db.snapshots import UserSnapshot

from ..events import ChangeEvent

__all__ = ["StorePage", "UserState", "apply", "from_snapshot", "page", "prime"]


@dataclass(frozen=True, slots=True)
class UserState:
    """What the store knows of one user.

    Attributes:
        seq: last change applied (0: none).
        status: latest status payload, or ``None``.
        primed: ``activities`` and ``status`` equal the database as of ``seq``.
        complete: (primed only) ``activities`` holds every activity of the user.
        activities: activity payloads, newest first by ``(timestamp, id)``,
            at most the store's window size.
    """

    user_id: str
    seq: int = 0
    status: StatusPayload | None = None
    primed: bool = False
    complete: bool = False
    activities: tuple[ActivityPayload, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserState:
        return cls(**{**data, "activities": tuple(data.get("activities", ()))})

    @property
    def status_known(self) -> bool:
        """Whether ``status`` (including ``None``: no status) may answer a query."""
        return self.primed or self.status is not None


@dataclass(frozen=True, slots=True)
class StorePage:
    items: Sequence[ActivityPayload]
    has_next: bool


def key_of(payload: ActivityPayload) -> ActivityKey:
    return ActivityKey(datetime.fromisoformat(payload["timestamp"]), int(payload["id"]))


def from_snapshot(snapshot: UserSnapshot) -> UserState:
    """The primed state a database snapshot describes."""
    return UserState(
        user_id=snapshot.user_id,
        seq=snapshot.seq,
        status=None if snapshot.status is None else outbox.status_payload(snapshot.status),
        primed=True,
        complete=snapshot.complete,
        activities=tuple(outbox.activity_payload(row) for row in snapshot.activities),
    )


def prime(current: UserState | None, snapshot: UserState) -> UserState:
    """Keep whichever is newer: a snapshot taken at ``seq`` replaces older state."""
    if current is None or snapshot.seq >= current.seq:
        return snapshot
    return current


def _insert(state: UserState, activity: ActivityPayload, window: int) -> UserState:
    items = [a for a in state.activities if a["id"] != activity["id"]]
    items.append(activity)
    items.sort(key=key_of, reverse=True)
    if len(items) <= window:
        return replace(state, activities=tuple(items))
    # A back-dated activity may fall below the window; the window stays the top N.
    return replace(state, activities=tuple(items[:window]), complete=False)


def apply(current: UserState | None, event: ChangeEvent, *, window: int) -> UserState:
    """The state after ``event``; ``current`` itself when the event is old news.

    Raises:
        ValueError: the event carries no payload.
    """
    if event.payload is None:
        raise ValueError(f"event {event.outbox_id} has no payload to apply")
    if current is None:
        # A first change means the database held nothing before it.
        current = UserState(user_id=event.user_id, primed=event.seq == 1, complete=True)
        if event.seq != 1:
            current = replace(current, seq=event.seq - 1)
    if event.seq <= current.seq:
        return current
    if event.seq > current.seq + 1:
        # Changes in between never reached us: only this event can be trusted.
        current = UserState(user_id=event.user_id, seq=event.seq - 1)
    match event.kind:
        case OutboxKind.STATUS:
            current = replace(current, status=event.status)
        case OutboxKind.ACTIVITY:
            # An unprimed window cannot say where the activity belongs among the missing ones.
            if current.primed:
                current = _insert(current, event.activity, window)
        case _:
            assert_never(event.kind)
    return replace(current, seq=event.seq)


def page(
    state: UserState,
    *,
    first: int,
    after: ActivityKey | None,
    types: Sequence[str] | None,
) -> StorePage | None:
    """A page of the user's activities from the window, or ``None`` if the window cannot tell.

    The window answers when it is primed and either holds every activity of
    the user or holds ``first + 1`` matches past ``after`` (so ``has_next`` is
    known too).
    """
    if not state.primed:
        return None
    wanted = set(types) if types is not None else None
    matches: list[ActivityPayload] = []
    for activity in state.activities:
        if after is not None and key_of(activity) >= after:
            continue
        if wanted is not None and activity["type"] not in wanted:
            continue
        matches.append(activity)
        if len(matches) > first:
            return StorePage(items=matches[:first], has_next=True)
    if state.complete:
        return StorePage(items=matches, has_next=False)
    return None
