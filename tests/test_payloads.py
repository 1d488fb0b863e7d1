"""Change payloads: the builders, the checks on JSON read back, and events that refuse a bad one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from db import Activity, AlertLevel, OutboxEntry, OutboxKind, UserStatus, outbox
from db.payloads import (
    ActivityPayload,
    InvalidPayload,
    StatusPayload,
    parse,
    parse_activity,
    parse_status,
)
from sync import ChangeEvent

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _activity() -> dict[str, Any]:
    row = Activity(
        id=7, user_id="u", seq=2, type="note", description="", timestamp=AT, metadata_={"a": 1}
    )
    return dict(outbox.activity_payload(row))


def _status() -> dict[str, Any]:
    row = UserStatus(
        user_id="u",
        last_check_in=AT,
        next_due=None,
        alert_level=AlertLevel.WARNING,
        alert_triggered_at=None,
        version=1,
        seq=3,
        updated_at=AT,
    )
    return dict(outbox.status_payload(row))


def test_builders_fill_every_key_of_their_type() -> None:
    assert set(_activity()) == ActivityPayload.__required_keys__
    assert set(_status()) == StatusPayload.__required_keys__
    assert parse_activity(_activity()) == _activity()
    assert parse(OutboxKind.STATUS, _status()) == _status()


@pytest.mark.parametrize("key", sorted(ActivityPayload.__required_keys__))
def test_an_activity_without_any_one_key_is_refused(key: str) -> None:
    payload = _activity()
    del payload[key]
    with pytest.raises(InvalidPayload, match=key):
        parse_activity(payload)


@pytest.mark.parametrize("key", sorted(StatusPayload.__required_keys__))
def test_a_status_without_any_one_key_is_refused(key: str) -> None:
    payload = _status()
    del payload[key]
    with pytest.raises(InvalidPayload, match=key):
        parse_status(payload)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seq", "3"),
        ("seq", True),
        ("version", None),
        ("alert_level", "PANIC"),
        ("updated_at", "yesterday"),
        ("updated_at", "2026-01-01T00:00:00"),  # naive
        ("next_due", 5),
    ],
)
def test_a_status_value_of_the_wrong_type_is_refused(key: str, value: object) -> None:
    with pytest.raises(InvalidPayload, match=key):
        parse_status({**_status(), key: value})


def test_unknown_keys_pass_and_a_non_object_is_refused() -> None:
    # A newer writer may add a key during a rolling deploy.
    assert parse_activity({**_activity(), "extra": 1})["extra"] == 1  # type: ignore[typeddict-item]
    with pytest.raises(InvalidPayload, match="not an object"):
        parse_activity([1, 2])
    # The kinds are not interchangeable.
    with pytest.raises(InvalidPayload):
        parse(OutboxKind.ACTIVITY, _status())


def _entry(kind: OutboxKind, payload: dict[str, Any]) -> OutboxEntry:
    return OutboxEntry(id=1, user_id="u", seq=3, kind=kind, payload=payload, committed_at=AT)


def test_an_outbox_entry_whose_payload_lacks_seq_is_refused() -> None:
    payload = _status()
    del payload["seq"]
    with pytest.raises(InvalidPayload, match="seq"):
        ChangeEvent.from_entry(_entry(OutboxKind.STATUS, payload))


def test_decode_refuses_a_payload_that_does_not_fit_the_kind() -> None:
    good = ChangeEvent.from_entry(_entry(OutboxKind.STATUS, _status()))
    assert ChangeEvent.decode(good.encode()) == good
    bad = good.encode().replace('"seq":3,', "")
    assert '"seq"' not in bad
    with pytest.raises(ValueError, match="seq"):
        ChangeEvent.decode(bad)
    with pytest.raises(ValueError, match="status payload"):
        good.with_payload(_activity())


def test_typed_access_refuses_the_wrong_kind_and_an_unloaded_payload() -> None:
    event = ChangeEvent.from_entry(_entry(OutboxKind.ACTIVITY, _activity()))
    assert event.activity["id"] == 7
    with pytest.raises(TypeError, match="not a status"):
        _ = event.status
    reference = ChangeEvent.decode(event.encode(max_bytes=10))
    assert reference.payload is None
    with pytest.raises(ValueError, match="no payload"):
        _ = reference.activity
    assert reference.with_payload(_activity()).activity == event.activity
