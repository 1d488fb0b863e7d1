"""The W3C trace context (``traceparent``) a change carries from its commit to its deliveries.

opentelemetry-api is optional (the ``otel`` extra); without it no change
carries a trace context. :mod:`sync.tracing` makes the spans.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

try:
    from opentelemetry import trace as _trace
except ImportError:  # the otel extra is not installed
    _trace = None  # type: ignore[assignment]

__all__ = [
    "TRACE_PARENT_LENGTH",
    "available",
    "current_trace_parent",
    "parse_trace_parent",
    "valid_trace_parent",
]

# Version 00: version-trace_id-parent_id-flags, lowercase hex, 55 characters.
_TRACE_PARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
TRACE_PARENT_LENGTH = 55


def available() -> bool:
    """Whether opentelemetry-api is installed."""
    return _trace is not None


def current_trace_parent() -> str | None:
    """The ``traceparent`` of the current span, or ``None`` when there is none."""
    if _trace is None:
        return None
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def valid_trace_parent(text: object) -> str | None:
    """``text`` if it is a well-formed ``traceparent`` with non-zero ids, else ``None``."""
    if not isinstance(text, str):
        return None
    match = _TRACE_PARENT.fullmatch(text)
    if match is None or not int(match[1], 16) or not int(match[2], 16):
        return None
    return text


def parse_trace_parent(text: object) -> SpanContext | None:
    """The remote span context of a ``traceparent``; ``None`` for anything else."""
    valid = valid_trace_parent(text)
    if _trace is None or valid is None:
        return None
    _, trace_id, span_id, flags = valid.split("-")
    return _trace.SpanContext(
        int(trace_id, 16),
        int(span_id, 16),
        is_remote=True,
        trace_flags=_trace.TraceFlags(int(flags, 16)),
    )
