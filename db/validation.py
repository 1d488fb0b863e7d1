"""Limits on what may be stored, and the checks that enforce them.

The checks run in the write functions of this package, before anything touches
the database, so every caller (GraphQL, CLI, tests) gets the same rules.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "DESCRIPTION_MAX_CHARS",
    "INTERVAL_MAX_SECONDS",
    "METADATA_MAX_BYTES",
    "METADATA_MAX_DEPTH",
    "METADATA_MAX_INT",
    "TYPE_PATTERN",
    "USER_ID_MAX_CHARS",
    "InvalidInput",
    "check_aware",
    "check_description",
    "check_interval",
    "check_metadata",
    "check_not_future",
    "check_text",
    "check_type",
    "check_user_id",
]

USER_ID_MAX_CHARS = 255
DESCRIPTION_MAX_CHARS = 2_000
METADATA_MAX_BYTES = 16 * 1024
# Objects and arrays nested in metadata, the top-level object counting as 1.
METADATA_MAX_DEPTH = 32
# Integers in metadata: JavaScript's Number.MAX_SAFE_INTEGER.
METADATA_MAX_INT = 2**53 - 1
TYPE_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}")
# How far ahead of the server's clock an event's own time may be.
FUTURE_SKEW = timedelta(minutes=5)
# Ten years: a longer interval is a unit mistake (milliseconds sent as seconds).
INTERVAL_MAX_SECONDS = 10 * 365 * 24 * 3600


class InvalidInput(ValueError):
    """A value breaks a documented limit.

    Attributes:
        field: the snake_case name of the offending argument, e.g. ``"description"``.
        reason: what is wrong, phrased to follow the field name,
            e.g. ``"must be at most 2000 characters (got 2001)"``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def check_text(value: str, *, field: str) -> str:
    """Return ``value`` if it is storable text: no NUL (PostgreSQL text and JSONB
    cannot hold it) and no lone UTF-16 surrogate (not encodable as UTF-8)."""
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL (\\u0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, "must be valid Unicode (a lone surrogate was found)") from None
    return value


_NUMBER_RANGE = (
    f"must hold integers from -{METADATA_MAX_INT} to {METADATA_MAX_INT} (2^53 - 1, what "
    "JavaScript clients read exactly) and finite floats; send larger numbers as strings"
)


def _check_float(value: float, field: str) -> None:
    # NaN and Infinity are not JSON (RFC 8259 section 6); storing them would
    # make every later response that includes this activity invalid JSON.
    if math.isnan(value):
        # GraphQL parses an integer literal too long for a float as NaN.
        raise InvalidInput(field, f"must not contain NaN; it {_NUMBER_RANGE.removeprefix('must ')}")
    if math.isinf(value):
        # Also what an integer literal too long for a float becomes.
        raise InvalidInput(field, f"{_NUMBER_RANGE} (got Infinity or a number out of range)")


def _check_json_values(value: object, field: str) -> None:
    """Check every string, integer and nesting level of a JSON value, without recursion.

    Iterative on purpose: a value nested a thousand levels deep must be refused
    with a message, not crash the checker (or the JSON encoder after it).
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, field=field)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, float):
            _check_float(item, field)
        elif isinstance(item, int):
            if not -METADATA_MAX_INT <= item <= METADATA_MAX_INT:
                raise InvalidInput(field, _NUMBER_RANGE)
        elif isinstance(item, dict | list):
            if depth > METADATA_MAX_DEPTH:
                raise InvalidInput(
                    field, f"must be nested at most {METADATA_MAX_DEPTH} levels deep"
                )
            if isinstance(item, dict):
                for key in item:
                    check_text(str(key), field=field)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def check_user_id(user_id: str, *, field: str = "user_id") -> str:
    """Return ``user_id`` if it is 1-255 characters without NUL; else raise InvalidInput."""
    check_text(user_id, field=field)
    if not user_id or not user_id.strip():
        raise InvalidInput(field, "must not be empty")
    if len(user_id) > USER_ID_MAX_CHARS:
        raise InvalidInput(
            field, f"must be at most {USER_ID_MAX_CHARS} characters (got {len(user_id)})"
        )
    return user_id


def check_type(value: str, *, field: str = "type") -> str:
    """Return ``value`` if it is 1-64 characters of ``[a-z0-9_.-]``."""
    if not TYPE_PATTERN.fullmatch(value):
        raise InvalidInput(
            field, f"must be 1-64 characters of [a-z0-9_.-], e.g. check_in (got {value!r:.80})"
        )
    return value


def check_description(value: str, *, field: str = "description") -> str:
    """Return ``value`` if it is at most 2,000 characters."""
    check_text(value, field=field)
    if len(value) > DESCRIPTION_MAX_CHARS:
        raise InvalidInput(
            field, f"must be at most {DESCRIPTION_MAX_CHARS} characters (got {len(value)})"
        )
    return value


def check_metadata(value: object, *, field: str = "metadata") -> dict[str, Any]:
    """Return ``value`` if it is a JSON object of at most 16 KiB serialised (UTF-8),
    nested at most 32 levels, with integers within +-(2^53 - 1)."""
    if not isinstance(value, dict):
        raise InvalidInput(field, f"must be a JSON object (got {type(value).__name__})")
    _check_json_values(value, field)
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    size = len(text.encode())
    if size > METADATA_MAX_BYTES:
        raise InvalidInput(
            field, f"must be at most {METADATA_MAX_BYTES} bytes serialised (got {size})"
        )
    return value


def check_aware(value: datetime, *, field: str) -> datetime:
    """Return ``value`` if it carries a UTC offset (naive times are ambiguous)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, "must include a timezone offset, e.g. 2026-01-01T00:00:00Z")
    return value


def check_not_future(value: datetime, *, field: str, now: datetime) -> datetime:
    """Return ``value`` unless it lies more than 5 minutes after ``now`` (clock skew allowed).

    When something happened cannot be in the future: a check-in dated next
    year would silence alerts until then, and a future activity would stay at
    the top of every feed.
    """
    check_aware(value, field=field)
    if value - now > FUTURE_SKEW:
        raise InvalidInput(
            field,
            f"must not be more than {int(FUTURE_SKEW.total_seconds())} seconds in the future "
            f"(got {value.isoformat()}, server time {now.isoformat()})",
        )
    return value


def check_interval(seconds: int, *, field: str = "interval_seconds") -> int:
    """Return ``seconds`` if it is between 0 and ten years."""
    if seconds < 0:
        raise InvalidInput(field, f"must be >= 0 seconds (got {seconds})")
    if seconds > INTERVAL_MAX_SECONDS:
        raise InvalidInput(field, f"must be at most {INTERVAL_MAX_SECONDS} seconds (got {seconds})")
    return seconds
