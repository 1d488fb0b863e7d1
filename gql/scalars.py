"""Scalars. ``DateTime`` only accepts and only emits timezone-aware UTC-convertible times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry

__all__ = ["DateTime", "parse_datetime", "serialize_datetime"]


def serialize_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, e.g. ``2026-01-01T09:30:00Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: Any) -> datetime:
    """Parse an ISO 8601 string with an offset into an aware UTC datetime.

    Raises:
        ValueError: not a string, not ISO 8601, or no timezone offset.
    """
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string, e.g. 2026-01-01T09:30:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"DateTime must be an ISO 8601 string, e.g. 2026-01-01T09:30:00Z (got {value!r:.60})"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            "DateTime must include a timezone offset, e.g. 2026-01-01T09:30:00Z "
            f"(got {value!r:.60})"
        )
    return parsed.astimezone(UTC)


# Installed with StrawberryConfig(scalar_map={datetime: DateTime}): fields annotate datetime.
DateTime = strawberry.scalar(
    name="DateTime",
    description="An ISO 8601 date-time with a timezone offset; always returned in UTC (Z).",
    specified_by_url="https://datatracker.ietf.org/doc/html/rfc3339",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)
