"""Opaque Relay cursors for activity feeds.

A cursor encodes an activity's keyset position ``(timestamp, id)``, so it
stays valid while newer activities are inserted (GraphQL Cursor Connections
Specification, section 2: cursors are opaque strings).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from db.activities import ActivityKey
from db.payloads import ActivityPayload

__all__ = ["InvalidCursor", "decode_cursor", "encode_cursor"]

_PREFIX = "a1:"
MAX_ID = 2**63 - 1


class InvalidCursor(ValueError):
    """The cursor was not issued by this service."""


def encode_cursor(activity: ActivityPayload) -> str:
    """The cursor of an activity payload (needs its ``timestamp`` and ``id``)."""
    text = f"{_PREFIX}{activity['timestamp']}|{activity['id']}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


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
        activity_id = int(ident)
        # Ids are positive 64-bit integers; a larger one would overflow the database.
        if not 0 < activity_id <= MAX_ID:
            raise ValueError("id out of range")
        return ActivityKey(timestamp, activity_id)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidCursor("is not a cursor issued by this API") from None
