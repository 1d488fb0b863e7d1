"""Change payloads: the JSON snapshots an outbox entry carries, typed once for every layer.

A payload travels as JSON: in the outbox's JSON column, in the realtime
store and on the broker. :class:`typing.TypedDict` types that JSON as it is,
with no conversion at any hop, and lets mypy check every read by key.

Data that comes back from JSON is untyped until :func:`parse` checks it:
every required key present with a value of the right type. A payload that
fails is refused with :class:`InvalidPayload` rather than served half-empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeAlias, TypedDict, assert_never, cast

from .models import Activity, AlertLevel, OutboxKind, UserStatus

__all__ = [
    "ActivityPayload",
    "InvalidPayload",
    "Payload",
    "StatusPayload",
    "activity_payload",
    "parse",
    "parse_activity",
    "parse_status",
    "status_payload",
]


class ActivityPayload(TypedDict):
    """An added activity. Timestamps are ISO 8601 text, UTC."""

    id: int
    user_id: str
    seq: int
    type: str
    description: str
    timestamp: str
    metadata: dict[str, Any]


class StatusPayload(TypedDict):
    """A user's full status after a change. Timestamps are ISO 8601 text, UTC, or ``None``."""

    user_id: str
    last_check_in: str | None
    next_due: str | None
    alert_level: str
    alert_triggered_at: str | None
    version: int
    seq: int
    updated_at: str


Payload: TypeAlias = ActivityPayload | StatusPayload


class InvalidPayload(ValueError):
    """A payload lacks a required key or holds a value of the wrong type."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def activity_payload(activity: Activity) -> ActivityPayload:
    """The JSON snapshot of an activity, as carried in the outbox and on channels."""
    return {
        "id": activity.id,
        "user_id": activity.user_id,
        "seq": activity.seq,
        "type": activity.type,
        "description": activity.description,
        "timestamp": activity.timestamp.isoformat(),
        "metadata": activity.metadata_,
    }


def status_payload(status: UserStatus) -> StatusPayload:
    """The JSON snapshot of a user status, as carried in the outbox and on channels."""
    return {
        "user_id": status.user_id,
        "last_check_in": _iso(status.last_check_in),
        "next_due": _iso(status.next_due),
        "alert_level": status.alert_level.value,
        "alert_triggered_at": _iso(status.alert_triggered_at),
        "version": status.version,
        "seq": status.seq,
        "updated_at": status.updated_at.isoformat(),
    }


def _is_int(value: object) -> bool:
    # bool is an int subclass; JSON true is not a sequence number.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_time(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _is_time_or_none(value: object) -> bool:
    return value is None or _is_time(value)


_ALERT_LEVELS = frozenset(level.value for level in AlertLevel)


def _is_alert_level(value: object) -> bool:
    return isinstance(value, str) and value in _ALERT_LEVELS


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


_Checks = Mapping[str, Callable[[object], bool]]
_ACTIVITY: _Checks = {
    "id": _is_int,
    "user_id": _is_str,
    "seq": _is_int,
    "type": _is_str,
    "description": _is_str,
    "timestamp": _is_time,
    "metadata": _is_object,
}
_STATUS: _Checks = {
    "user_id": _is_str,
    "last_check_in": _is_time_or_none,
    "next_due": _is_time_or_none,
    "alert_level": _is_alert_level,
    "alert_triggered_at": _is_time_or_none,
    "version": _is_int,
    "seq": _is_int,
    "updated_at": _is_time,
}


def _check(what: str, data: object, checks: _Checks) -> None:
    if not isinstance(data, Mapping):
        raise InvalidPayload(f"{what} payload is not an object: {type(data).__name__}")
    # Keys beyond these are let through: a newer writer may add one during a rolling deploy.
    missing = [key for key in checks if key not in data]
    if missing:
        raise InvalidPayload(f"{what} payload lacks {', '.join(missing)}")
    wrong = [key for key, valid in checks.items() if not valid(data[key])]
    if wrong:
        raise InvalidPayload(f"{what} payload has a bad {', '.join(wrong)}")


def parse_activity(data: object) -> ActivityPayload:
    """``data`` as an activity payload (the same object, checked).

    Raises:
        InvalidPayload: a required key is missing or has the wrong type.
    """
    _check("activity", data, _ACTIVITY)
    return cast(ActivityPayload, data)


def parse_status(data: object) -> StatusPayload:
    """``data`` as a status payload (the same object, checked).

    Raises:
        InvalidPayload: a required key is missing or has the wrong type.
    """
    _check("status", data, _STATUS)
    return cast(StatusPayload, data)


def parse(kind: OutboxKind, data: object) -> Payload:
    """``data`` as the payload of an entry of ``kind``.

    Raises:
        InvalidPayload: ``data`` is not a payload of that kind.
    """
    match kind:
        case OutboxKind.ACTIVITY:
            return parse_activity(data)
        case OutboxKind.STATUS:
            return parse_status(data)
        case _:
            assert_never(kind)
