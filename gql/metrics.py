"""Prometheus metrics of the GraphQL surface: delivery freshness, traffic, HTTP operations.

Every label value comes from a closed set (the schema's subscription fields,
GraphQL operation types, three outcomes), never from a client: a metric's
series count is fixed, whatever the traffic.

Several worker processes (``uvicorn --workers N``, ``serve --workers N``):
when ``PROMETHEUS_MULTIPROC_DIR`` is set, prometheus-client keeps every
counter, histogram and gauge of each process in files there, and
:func:`exposition` answers ``/metrics`` with all processes' values summed
(gauges of live processes only, ``livesum``). The directory must be empty
when the first worker starts: ``checkin-realtime serve`` empties it (see
:func:`gql.cli.main`); other process managers must do the same.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.registry import Collector
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from sync.metrics import LAG_BUCKETS
from sync.tracing import Tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = [
    "MULTIPROC_ENV",
    "OPERATION_TYPES",
    "OUTCOMES",
    "SUBSCRIPTION_FIELDS",
    "ApiMetrics",
    "Delivery",
    "OperationMetrics",
    "exposition_registry",
    "multiprocess_dir",
]

logger = logging.getLogger(__name__)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

#: The schema's subscription fields (tests/test_metrics.py checks them against the schema).
SUBSCRIPTION_FIELDS: Final = (
    "activityAdded",
    "userStatusChanged",
    "activityFeedAdded",
    "userStatusFeed",
    "dashboard",
)
OPERATION_TYPES: Final = ("query", "mutation", "subscription", "unknown")
#: ``ok``: no error; ``error``: executed, with errors; ``refused``: not executed
#: (unparsable, invalid, over a limit, or the wrong operation type for the method).
OUTCOMES: Final = ("ok", "error", "refused")

# HTTP operation latency buckets, in seconds.
OPERATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    """The multiprocess directory, when this process shares its metrics with others."""
    return os.environ.get(MULTIPROC_ENV) or None


class ApiMetrics:
    """The metrics below, registered in ``registry`` (one per app: nothing is global).

    Metrics:
        ``checkin_delivery_latency_seconds{field}``: seconds from the change's
        commit (``committed_at``) to its frame being handed to the socket.
        ``checkin_events_delivered_total{field}``: change events delivered.
        ``checkin_websocket_connections``: open WebSockets.
        ``checkin_active_subscriptions{field}``: subscriptions running.
        ``checkin_subscription_resumes_total{field}``: subscriptions started with ``after``.
        ``checkin_cursor_expired_total{field}``: resumes refused with ``CURSOR_EXPIRED``.
        ``checkin_http_operations_total{operation_type, outcome}``: GraphQL over HTTP.
        ``checkin_http_operation_duration_seconds{operation_type}``: their latency.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, tracing: Tracing | None = None
    ) -> None:
        self.tracing = tracing or Tracing()
        self.delivery_latency = Histogram(
            "checkin_delivery_latency_seconds",
            "Seconds from commit to the frame handed to the socket.",
            ["field"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.delivered = Counter(
            "checkin_events_delivered", "Change events delivered.", ["field"], registry=registry
        )
        self.connections = Gauge(
            "checkin_websocket_connections",
            "Open WebSockets.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.subscriptions = Gauge(
            "checkin_active_subscriptions",
            "Subscriptions running.",
            ["field"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.resumes = Counter(
            "checkin_subscription_resumes",
            "Subscriptions started with `after`.",
            ["field"],
            registry=registry,
        )
        self.cursor_expired = Counter(
            "checkin_cursor_expired",
            "Resumes refused with CURSOR_EXPIRED.",
            ["field"],
            registry=registry,
        )
        self.operations = Counter(
            "checkin_http_operations",
            "GraphQL operations over HTTP.",
            ["operation_type", "outcome"],
            registry=registry,
        )
        self.operation_latency = Histogram(
            "checkin_http_operation_duration_seconds",
            "Seconds to execute a GraphQL operation over HTTP.",
            ["operation_type"],
            buckets=OPERATION_BUCKETS,
            registry=registry,
        )
        # Every series exists from the start, at zero: rate() and dashboards see them.
        for field in SUBSCRIPTION_FIELDS:
            for metric in (self.delivery_latency, self.delivered, self.subscriptions):
                metric.labels(field)
            self.resumes.labels(field)
            self.cursor_expired.labels(field)
        for operation_type in OPERATION_TYPES:
            self.operation_latency.labels(operation_type)
            for outcome in OUTCOMES:
                self.operations.labels(operation_type, outcome)

    def subscription(self, field: str, *, resumed: bool) -> Delivery:
        """A running subscription of ``field``; enter it for as long as it runs."""
        return Delivery(self, _known_field(field), resumed=resumed)

    def websocket_opened(self) -> None:
        self.connections.inc()

    def websocket_closed(self) -> None:
        self.connections.dec()

    def observe_operation(self, operation_type: str, outcome: str, seconds: float) -> None:
        operation_type = operation_type if operation_type in OPERATION_TYPES else "unknown"
        self.operations.labels(operation_type, outcome).inc()
        self.operation_latency.labels(operation_type).observe(seconds)

    def close(self) -> None:
        """At process exit: drop this process's live gauges from the multiprocess directory."""
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _known_field(field: str) -> str:
    if field not in SUBSCRIPTION_FIELDS:
        raise ValueError(f"{field!r} is not a subscription field")
    return field


class Delivery:
    """Counts one subscription while it runs and measures each event it delivers.

    Use it as a context manager around the whole subscription, and
    :meth:`deliver` around each ``yield``: the generator resumes after
    Strawberry has sent the frame, so the time at resumption is when the frame
    was handed to the socket.
    """

    def __init__(self, metrics: ApiMetrics, field: str, *, resumed: bool) -> None:
        self._metrics = metrics
        self.field = field
        self._resumed = resumed
        self.count = 0

    def __enter__(self) -> Delivery:
        self._metrics.subscriptions.labels(self.field).inc()
        if self._resumed:
            self._metrics.resumes.labels(self.field).inc()
        logger.info("subscription %s started%s", self.field, " (resuming)" if self._resumed else "")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._metrics.subscriptions.labels(self.field).dec()
        how = "" if exc_type is None or exc_type is GeneratorExit else f" ({exc_type.__name__})"
        logger.info("subscription %s ended after %d events%s", self.field, self.count, how)

    def cursor_expired(self) -> None:
        self._metrics.cursor_expired.labels(self.field).inc()

    def deliver(self, committed_at: datetime, trace_parent: str | None = None) -> _Sending:
        """Enter around the ``yield`` of one change event committed at ``committed_at``."""
        return _Sending(self, committed_at, trace_parent)

    def _delivered(self, committed_at: datetime) -> None:
        self.count += 1
        lag = (datetime.now(UTC) - committed_at).total_seconds()
        self._metrics.delivered.labels(self.field).inc()
        self._metrics.delivery_latency.labels(self.field).observe(max(0.0, lag))


class _Sending:
    __slots__ = ("_committed_at", "_delivery", "_span", "_trace_parent")

    def __init__(
        self, delivery: Delivery, committed_at: datetime, trace_parent: str | None
    ) -> None:
        self._delivery = delivery
        self._committed_at = committed_at
        self._trace_parent = trace_parent
        self._span: Span | None = None

    def __enter__(self) -> None:
        tracing = self._delivery._metrics.tracing
        self._span = tracing.start_delivery(self._delivery.field, self._trace_parent)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._span is not None:
            self._span.end()
        # GeneratorExit or cancellation: the client left before the frame went out.
        if exc_type is None:
            self._delivery._delivered(self._committed_at)


class OperationMetrics(SchemaExtension):
    """Counts GraphQL operations over HTTP by type and outcome, and times them.

    WebSocket operations are counted by the subscription metrics instead.
    """

    def __init__(self, *, execution_context: Any = None) -> None:
        self._executed = False
        if execution_context is not None:
            self.execution_context = execution_context

    def on_execute(self) -> Iterator[None]:
        self._executed = True
        yield

    def on_operation(self) -> Iterator[None]:
        start = perf_counter()
        outcome = "refused"
        try:
            yield
            result = self.execution_context.result
            if self._executed:
                outcome = "error" if result is not None and result.errors else "ok"
        finally:
            self._observe(outcome, perf_counter() - start)

    def _observe(self, outcome: str, seconds: float) -> None:
        context = self.execution_context.context
        request = getattr(context, "request", None)
        services = getattr(context, "services", None)
        if services is None or request is None or request.scope.get("type") != "http":
            return
        try:
            operation_type: OperationType | None = self.execution_context.operation_type
        except Exception:  # no document: it did not parse
            operation_type = None
        name = operation_type.value if operation_type is not None else "unknown"
        services.metrics.observe_operation(name, outcome, seconds)


def exposition_registry(registry: CollectorRegistry, *collectors: Collector) -> CollectorRegistry:
    """The registry ``/metrics`` serves.

    One process: ``registry`` itself, with ``collectors`` added. Several
    (``PROMETHEUS_MULTIPROC_DIR``): a registry that reads every process's
    values from the directory, plus ``collectors``, which report what the
    answering process sees at scrape time.
    """
    path = multiprocess_dir()
    target = registry
    if path is not None:
        target = CollectorRegistry()
        multiprocess.MultiProcessCollector(target, path=path)  # type: ignore[no-untyped-call]
    for collector in collectors:
        target.register(collector)
    return target
