"""Opaque Relay cursors for activity feeds and the status overview.

An activity cursor encodes its keyset position ``(timestamp, id)``, so it
stays valid while newer activities are inserted; a status cursor encodes
``(level rank, nextDue, userId)`` (:class:`db.overview.StatusKey`) (GraphQL Cursor Connections
Specification, section 2: cursors are opaque strings).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from db.activities import ActivityKey
from db.models import AlertLevel
from db.overview import StatusKey
from db.payloads import ActivityPayload, StatusPayload
from db.urgency import DUE_NEVER, rank

__all__ = [
    "InvalidCursor",
    "decode_cursor",
    "decode_status_cursor",
    "encode_cursor",
    "encode_status_cursor",
]

_PREFIX = "a1:"
_STATUS_PREFIX = "s1:"
MAX_ID = 2**63 - 1


class InvalidCursor(ValueError):
    """The cursor was not issued by this service."""


def encode_cursor(activity: ActivityPayload) -> str:
    """The cursor of an activity payload (needs its ``timestamp`` and ``id``)."""
    text = f"{_PREFIX}{activity['timestamp']}|{activity['id']}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str, prefix: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    text = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    if not text.startswith(prefix):
        raise ValueError("prefix")
    return text[len(prefix) :]


def _aware(stamp: str) -> datetime:
    timestamp = datetime.fromisoformat(stamp)
    if timestamp.tzinfo is None:
        raise ValueError("naive")
    return timestamp


def encode_status_cursor(status: StatusPayload) -> str:
    """The cursor of a status payload in the overview's urgency order."""
    due = status["next_due"] or DUE_NEVER.isoformat()
    level = rank(AlertLevel(status["alert_level"]))
    return _encode(f"{_STATUS_PREFIX}{level}|{due}|{status['user_id']}")


def decode_status_cursor(cursor: str) -> StatusKey:
    """The keyset position of a status ``cursor``.

    Raises:
        InvalidCursor: not base64url, wrong prefix, or a bad rank, time or user id.
    """
    try:
        level, due, user_id = _decode(cursor, _STATUS_PREFIX).split("|", 2)
        if level not in {"0", "1", "2", "3"} or not user_id:
            raise ValueError("rank or user id")
        return StatusKey(int(level), _aware(due), user_id)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidCursor("is not a cursor issued by this API") from None


def decode_cursor(cursor: str) -> ActivityKey:
    """The keyset position of ``cursor``.

    Raises:
        InvalidCursor: not base64url, wrong prefix, or a bad timestamp or id.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
        if not text.startswith(_PREFIX):
            raise ValueError("prefix")
        stamp, _, ident = text[len(_PREFIX) :].rpartition("|")
        timestamp = datetime.fromisoformat(stamp)
        if timestamp.tzinfo is None:
            raise ValueError("naive")
        if not (ident.isascii() and ident.isdigit()):
            # int() would also take "+1", "1_0" and non-ASCII digits.
            raise ValueError("id")
        activity_id = int(ident)
        # Ids are positive 64-bit integers; a larger one would overflow the database.
        if not 0 < activity_id <= MAX_ID:
            raise ValueError("id out of range")
        return ActivityKey(timestamp, activity_id)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidCursor("is not a cursor issued by this API") from None
