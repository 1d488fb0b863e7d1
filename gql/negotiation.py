"""Content negotiation and status codes of GraphQL over HTTP (GraphQL Foundation spec).

* :func:`negotiate` picks the response media type from ``Accept`` (RFC 9110
  section 12.5.1): ``application/graphql-response+json`` when the client names
  it with the highest quality, ``application/json`` for a missing ``Accept``,
  ``*/*``, ``application/*`` or a ``application/json`` preferred by quality,
  and ``None`` (406 Not Acceptable) when neither is acceptable.
* :func:`result_status` is the status of a GraphQL response: with
  ``application/json`` 200 for every well-formed request (the spec's legacy
  rule, which every client reads); with ``application/graphql-response+json``
  200 when the response has ``data`` and a 4xx or 5xx status from the error
  codes when it has none (a request error: parse, validation, operation or
  variable coercion). The spec's current draft recommends 422 for validation
  and coercion failures; the ``graphql-http`` audits, which the test suite
  runs, require 400, and 400 it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .codes import ErrorCode

__all__ = [
    "GRAPHQL_RESPONSE_JSON",
    "JSON",
    "accept_header",
    "content_type",
    "negotiate",
    "result_status",
    "status_for_codes",
]

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"

# The status of a response without ``data`` under application/graphql-response+json,
# by the code of its first error; other codes get 400 (the request's fault).
_STATUS_BY_CODE: Mapping[str, int] = {
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.INTERNAL_SERVER_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}


def _ranges(accept: str) -> Iterable[tuple[str, float]]:
    """``(media range, quality)`` for each element of an ``Accept`` header."""
    for element in accept.split(","):
        media_range, *params = element.split(";")
        media_range = media_range.strip().lower()
        if not media_range:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0:
                    quality = 0.0
        yield media_range, quality


def _quality(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """The quality the most specific matching range gives ``media_type``, and its specificity
    (2 exact, 1 ``type/*``, 0 ``*/*``); ``(0, -1)`` when no range matches."""
    kind = media_type.split("/", 1)[0]
    best: tuple[float, int] = (0.0, -1)
    for media_range, quality in ranges:
        if media_range == media_type:
            specificity = 2
        elif media_range == f"{kind}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (quality, specificity)
    return best


def negotiate(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header, or None if none is acceptable.

    Args:
        accept: the header's value; None or blank when the request has none.
    """
    if accept is None or not accept.strip():
        return JSON
    ranges = list(_ranges(accept))
    graphql_q, graphql_specificity = _quality(GRAPHQL_RESPONSE_JSON, ranges)
    json_q, _ = _quality(JSON, ranges)
    if graphql_q <= 0 and json_q <= 0:
        return None
    # Named explicitly with the best quality, the new media type wins; a wildcard alone
    # gets application/json, which legacy clients can read.
    if graphql_q > json_q or (graphql_q == json_q and graphql_specificity == 2):
        return GRAPHQL_RESPONSE_JSON
    return JSON


def accept_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Accept`` header of raw ASGI headers (several are joined, RFC 9110 5.3)."""
    values = [value.decode("latin-1") for name, value in headers if name.lower() == b"accept"]
    return ",".join(values) if values else None


def content_type(media_type: str) -> str:
    """The ``Content-Type`` value of a response in ``media_type`` (always UTF-8)."""
    return f"{media_type}; charset=utf-8"


def status_for_codes(codes: Iterable[object]) -> int:
    """The 4xx or 5xx status of a response without ``data`` whose errors have ``codes``."""
    for code in codes:
        if isinstance(code, str) and code in _STATUS_BY_CODE:
            return _STATUS_BY_CODE[code]
        return 400
    return 400


def result_status(media_type: str, response: Mapping[str, Any]) -> int:
    """The status of a serialised GraphQL response (``{"data"?, "errors"?}``) in ``media_type``.

    ``application/json`` is always 200; ``application/graphql-response+json`` is
    200 with ``data`` (even null: the operation ran), otherwise 4xx or 5xx.
    """
    if media_type != GRAPHQL_RESPONSE_JSON or "data" in response:
        return 200
    errors = response.get("errors") or []
    return status_for_codes(
        (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
        for error in errors
    )
