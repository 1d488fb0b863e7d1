"""OpenTelemetry spans of the relay and the fan-out, and the trace context an outbox entry carries.

opentelemetry-api is optional (the ``otel`` extra). Without it, or with
tracing off, :class:`Tracing` makes no spans and costs a branch.

The trace context travels with the change: the writer stores the W3C
``traceparent`` of the span it commits in (:func:`sync.trace_context.current_trace_parent`) in
the outbox entry, the relay publishes it with the event, and every delivery
span links to it. So a trace of a mutation leads to each socket its change
reached, across processes and the broker.

Spans:

* ``outbox.relay``: one relay round that claimed entries (``outbox.claimed``).
* ``outbox.apply``, ``outbox.publish``: one entry to the store, to the broker;
  children of the commit's span.
* ``subscription.deliver``: one event handed to one socket, linked to the
  commit's span (``graphql.field``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .events import ChangeEvent
from .mirror import StoreMirror
from .relay import Publisher, Relay
from .trace_context import parse_trace_parent

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

try:
    from opentelemetry import trace as _trace
except ImportError:  # the otel extra is not installed
    _trace = None  # type: ignore[assignment]

__all__ = ["TRACER_NAME", "TracedMirror", "TracedPublisher", "TracedRelay", "Tracing"]

TRACER_NAME = "checkin-realtime"


class Tracing:
    """Makes this service's spans, or none.

    Args:
        tracer_provider: where spans go; ``None``: the global provider.
        enabled: ``False`` makes no spans at all.
    """

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, enabled: bool = False
    ) -> None:
        self._tracer: Tracer | None = None
        self.has_provider = tracer_provider is not None
        if enabled and _trace is not None:
            self._tracer = _trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextmanager
    def child_of_commit(self, name: str, event: ChangeEvent) -> Iterator[None]:
        """A span of ``event``'s relay, a child of its commit's span when that is known."""
        if self._tracer is None or _trace is None:
            yield
            return
        parent = parse_trace_parent(event.trace_parent)
        context = (
            None if parent is None else _trace.set_span_in_context(_trace.NonRecordingSpan(parent))
        )
        with self._tracer.start_as_current_span(
            name, context=context, attributes=_event_attributes(event)
        ):
            yield

    def start_delivery(self, field: str, trace_parent: str | None) -> Span | None:
        """Start the span of one event handed to a socket (end it when sent), or ``None``."""
        if self._tracer is None or _trace is None:
            return None
        commit = parse_trace_parent(trace_parent)
        links = [] if commit is None else [_trace.Link(commit)]
        return self._tracer.start_span(
            "subscription.deliver",
            kind=_trace.SpanKind.CONSUMER,
            links=links,
            attributes={"graphql.field": field},
        )

    def record_round(self, start_ns: int, claimed: int) -> None:
        """Record a relay round that claimed entries, after the fact (idle rounds make none)."""
        if self._tracer is None or not claimed:
            return
        span = self._tracer.start_span(
            "outbox.relay", start_time=start_ns, attributes={"outbox.claimed": claimed}
        )
        span.end()


def _event_attributes(event: ChangeEvent) -> dict[str, Any]:
    # The user id is left out: traces go to a third-party backend.
    return {"outbox.id": event.outbox_id, "outbox.seq": event.seq, "outbox.kind": event.kind.value}


class TracedRelay(Relay):
    """A :class:`Relay` that records its rounds as ``outbox.relay`` spans.

    Args:
        tracing: where the spans go; the rest as :class:`Relay`.
    """

    def __init__(self, *, tracing: Tracing, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tracing = tracing

    async def run_once(self) -> int:
        start = time.time_ns()
        claimed = await super().run_once()
        self.tracing.record_round(start, claimed)
        return claimed


class TracedMirror(StoreMirror):
    """A :class:`StoreMirror` whose applies are ``outbox.apply`` spans.

    Args:
        tracing: where the spans go; the rest as :class:`StoreMirror`.
    """

    def __init__(self, *, tracing: Tracing, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tracing = tracing

    async def apply(self, event: ChangeEvent) -> None:
        with self.tracing.child_of_commit("outbox.apply", event):
            await super().apply(event)


class TracedPublisher:
    """Wraps a publisher: each publish is an ``outbox.publish`` span."""

    def __init__(self, publisher: Publisher, tracing: Tracing) -> None:
        self._publisher = publisher
        self._tracing = tracing

    async def publish(self, event: ChangeEvent) -> None:
        with self._tracing.child_of_commit("outbox.publish", event):
            await self._publisher.publish(event)
