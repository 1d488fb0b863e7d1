"""The pure store rules and the memory backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db import Activity, AlertLevel, UserStatus, outbox
from db.activities import ActivityKey
from db.models import OutboxKind
from sync.events import ChangeEvent
from sync.stores.memory import MemoryStore
from sync.stores.state import UserState, apply, page, prime

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def activity(
    seq: int, *, minutes: int | None = None, type: str = "note", user_id: str = "u"
) -> ChangeEvent:
    row = Activity(
        id=seq * 10,
        user_id=user_id,
        seq=seq,
        type=type,
        description="",
        timestamp=T0 + timedelta(minutes=seq if minutes is None else minutes),
        metadata_={},
    )
    return ChangeEvent(seq, user_id, seq, OutboxKind.ACTIVITY, outbox.activity_payload(row), T0)


def status(seq: int, version: int) -> ChangeEvent:
    row = UserStatus(
        user_id="u",
        last_check_in=None,
        next_due=None,
        alert_level=AlertLevel.NONE,
        alert_triggered_at=None,
        version=version,
        seq=seq,
        updated_at=T0,
    )
    return ChangeEvent(seq, "u", seq, OutboxKind.STATUS, outbox.status_payload(row), T0)


def test_first_change_primes_a_new_user() -> None:
    state = apply(None, activity(1), window=5)
    assert state.primed and state.complete and state.seq == 1
    assert page(state, first=10, after=None, types=None) is not None


def test_apply_is_idempotent() -> None:
    state = apply(None, activity(1), window=5)
    state = apply(state, activity(2), window=5)
    again = apply(state, activity(2), window=5)
    older = apply(again, activity(1), window=5)
    assert again is state and older is state
    assert [a["seq"] for a in state.activities] == [2, 1]


def test_status_is_never_replaced_by_an_older_one() -> None:
    state = apply(None, status(1, 1), window=5)
    state = apply(state, status(2, 2), window=5)
    assert apply(state, status(1, 1), window=5).status == status(2, 2).status


def test_gap_drops_the_activity_window_but_keeps_the_new_status() -> None:
    state = apply(None, activity(1), window=5)
    state = apply(state, status(4, 3), window=5)
    assert not state.primed and state.seq == 4
    assert state.status is not None and state.status["version"] == 3
    assert state.status_known
    assert page(state, first=1, after=None, types=None) is None


def test_window_keeps_newest_by_timestamp_including_backdated() -> None:
    state: UserState | None = None
    for seq in range(1, 5):
        state = apply(state, activity(seq), window=3)
    assert state is not None
    assert [a["seq"] for a in state.activities] == [4, 3, 2]
    assert not state.complete
    # Back-dated below the window: not kept, window unchanged.
    state = apply(state, activity(5, minutes=-100), window=3)
    assert [a["seq"] for a in state.activities] == [4, 3, 2]
    # Back-dated into the middle of the window: kept in timestamp order.
    state = apply(state, activity(6, minutes=3), window=3)
    assert [a["seq"] for a in state.activities] == [4, 6, 3]


def test_truncated_window_answers_only_what_it_can() -> None:
    state: UserState | None = None
    for seq in range(1, 6):
        state = apply(state, activity(seq), window=3)
    assert state is not None
    hit = page(state, first=2, after=None, types=None)
    assert hit is not None and [a["seq"] for a in hit.items] == [5, 4] and hit.has_next
    # Two past the first item would need the 4th newest: not in the window.
    key = ActivityKey(T0 + timedelta(minutes=5), 50)
    assert page(state, first=2, after=key, types=None) is None


def test_complete_window_answers_filters_and_cursors() -> None:
    state: UserState | None = None
    for seq in range(1, 5):
        state = apply(state, activity(seq, type="note" if seq % 2 else "check_in"), window=10)
    assert state is not None
    hit = page(state, first=10, after=None, types=["note"])
    assert hit is not None and [a["seq"] for a in hit.items] == [3, 1] and not hit.has_next
    key = ActivityKey(T0 + timedelta(minutes=3), 30)
    rest = page(state, first=10, after=key, types=None)
    assert rest is not None and [a["seq"] for a in rest.items] == [2, 1]


def test_prime_keeps_the_newer_state() -> None:
    newer = UserState(user_id="u", seq=5, primed=False)
    snapshot = UserState(user_id="u", seq=4, primed=True, complete=True)
    assert prime(newer, snapshot) is newer
    assert prime(UserState(user_id="u", seq=3), snapshot) is snapshot


async def test_memory_store_evicts_least_recently_used() -> None:
    store = MemoryStore(window=5, max_users=2)
    async with store:
        for user in ("a", "b", "c"):
            await store.apply(activity(1, user_id=user))
        assert await store.get("a") is None
        assert await store.get("c") is not None
        assert len(store) == 2
