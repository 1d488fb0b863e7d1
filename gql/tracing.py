"""OpenTelemetry for the GraphQL surface, on with ``TRACING=true`` (needs the ``otel`` extra).

Operations are traced by Strawberry's ``OpenTelemetryExtension``, with two
changes: an operation continues the trace of an incoming W3C ``traceparent``
header, and nothing a client wrote reaches a span except the names of the
operation and fields and a few id-like arguments (no query text, no inputs:
notes and metadata stay out of the tracing backend). The relay's and the
fan-out's spans are in :mod:`sync.tracing`.

Where spans go: to the tracer provider given to :func:`gql.app.create_app`;
else to the global one when something set it up (``opentelemetry-instrument``);
else :func:`install_global_provider` installs one that exports over OTLP/HTTP, which
the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_SERVICE_NAME``
variables configure.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from strawberry.extensions import SchemaExtension

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["SAFE_ARGUMENTS", "install_global_provider", "schema_extensions"]

logger = logging.getLogger(__name__)

#: Resolver arguments recorded on spans; every other one (inputs, notes, metadata) is left out.
SAFE_ARGUMENTS = frozenset({"userId", "user_id", "after", "first", "last", "before"})


def _safe_arguments(args: dict[str, Any], info: Any) -> dict[str, Any]:
    return {name: value for name, value in args.items() if name in SAFE_ARGUMENTS}


def schema_extensions(
    tracer_provider: TracerProvider | None,
) -> list[Callable[[], SchemaExtension]]:
    """The schema extension factories that trace operations into ``tracer_provider``."""
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from strawberry.extensions import LifecycleStep
    from strawberry.extensions.tracing import OpenTelemetryExtension

    propagator = TraceContextTextMapPropagator()

    class OperationTracing(OpenTelemetryExtension):
        def on_operation(self) -> Generator[None, None, None]:
            context = self.execution_context
            request = getattr(context.context, "request", None)
            headers = getattr(request, "headers", None)
            parent = propagator.extract(carrier=dict(headers)) if headers is not None else None
            span = self._tracer.start_span(
                "GraphQL operation", kind=SpanKind.SERVER, context=parent
            )
            span.set_attribute("component", "graphql")
            self._span_holder[LifecycleStep.OPERATION] = span
            try:
                yield
            finally:
                name = context.operation_name
                if name:
                    span.update_name(f"GraphQL operation {name}")
                    span.set_attribute("graphql.operation.name", name)
                try:
                    span.set_attribute("graphql.operation.type", context.operation_type.value)
                except Exception:  # no document: it did not parse
                    pass
                span.end()

    def make() -> SchemaExtension:
        return OperationTracing(arg_filter=_safe_arguments, tracer_provider=tracer_provider)

    return [make]


def install_global_provider() -> None:
    """Install an OTLP-exporting global provider unless one is set up already.

    The SDK's provider flushes its spans at process exit by itself.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # opentelemetry-instrument, or the embedding application, set one up
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        logger.warning("TRACING is on but no OTLP exporter is installed: spans are dropped")
        return
    name = os.environ.get("OTEL_SERVICE_NAME") or "checkin-realtime"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    logger.info("tracing: OTLP over HTTP (%s)", _endpoint())


def _endpoint() -> str:
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or "http://localhost:4318"
    )
