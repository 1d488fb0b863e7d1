"""OpenTelemetry: operations, relay and fan-out make spans; a delivery links to its commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from db.migrate import upgrade
from db.models import OutboxEntry, OutboxKind
from gql import Settings, create_app
from gql.context import Services
from sync.events import ChangeEvent
from sync.trace_context import parse_trace_parent, valid_trace_parent

from .conftest import websocket
from .helpers import TRANSPORT_WS, Protocol

ADD = """mutation Add($input: AddActivityInput!) { addActivity(input: $input) { seq } }"""
ACTIVITY_ADDED = "subscription Watch($u: String!) { activityAdded(userId: $u) { seq } }"
INCOMING = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
MARKER = "metadata-marker-91c2"


def _settings(tmp_path: Path, *, tracing: bool) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        relay_poll_interval=0.05,
        escalation_policy="",  # type: ignore[arg-type]
        tracing=tracing,
    )


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def app(tmp_path: Path, exporter: InMemorySpanExporter) -> AsyncIterator[FastAPI]:
    settings = _settings(tmp_path, tracing=True)
    await asyncio.to_thread(upgrade, settings.database_url)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    application = create_app(settings, tracer_provider=provider)
    async with application.router.lifespan_context(application):
        yield application
    provider.shutdown()


async def _spans(exporter: InMemorySpanExporter, name: str, count: int = 1) -> list[ReadableSpan]:
    for _ in range(200):
        found = [span for span in exporter.get_finished_spans() if span.name == name]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.01)
    names = [span.name for span in exporter.get_finished_spans()]
    raise AssertionError(f"no {name} span; got {names}")


async def test_a_delivery_links_to_the_span_its_change_was_committed_in(
    app: FastAPI, exporter: InMemorySpanExporter
) -> None:
    services: Services = app.state.services
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
        websocket(app, TRANSPORT_WS) as ws,
    ):
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1"})
        await asyncio.sleep(0.1)  # subscribed before the write
        variables = {"input": {"userId": "u1", "type": "note", "metadata": {"k": MARKER}}}
        response = await http.post(
            "/graphql",
            json={"query": ADD, "variables": variables},
            headers={"traceparent": INCOMING},
        )
        assert response.status_code == 200 and "errors" not in response.json()
        assert (await proto.next_data("a"))["activityAdded"]["seq"] == 1
        await proto.stop("a")
        (deliver,) = await _spans(exporter, "subscription.deliver")

    (operation,) = [s for s in exporter.get_finished_spans() if s.name == "GraphQL operation Add"]
    (resolver,) = await _spans(exporter, "GraphQL Resolving: addActivity")
    # The operation continues the caller's trace.
    incoming = parse_trace_parent(INCOMING)
    assert incoming is not None
    assert operation.context is not None and operation.context.trace_id == incoming.trace_id
    assert operation.parent is not None and operation.parent.span_id == incoming.span_id
    assert resolver.context is not None and resolver.parent is not None
    assert resolver.parent.span_id == operation.context.span_id

    # The outbox entry carries the commit's span context.
    async with services.sessions() as session:
        entry = (await session.scalars(select(OutboxEntry).order_by(OutboxEntry.id))).first()
    assert entry is not None and entry.trace_parent is not None
    committed = parse_trace_parent(entry.trace_parent)
    assert committed is not None
    assert (committed.trace_id, committed.span_id) == (
        resolver.context.trace_id,
        resolver.context.span_id,
    )

    # The relay's spans for it are children of the commit's span.
    applies = await _spans(exporter, "outbox.apply")
    publishes = await _spans(exporter, "outbox.publish")
    for span in (applies[0], publishes[0]):
        assert span.parent is not None and span.parent.span_id == resolver.context.span_id
        assert span.context is not None and span.context.trace_id == incoming.trace_id
        assert span.attributes is not None and span.attributes["outbox.kind"] == "activity"
    (relay_round, *_) = await _spans(exporter, "outbox.relay")
    assert relay_round.attributes is not None and relay_round.attributes["outbox.claimed"] >= 1

    # The delivery, in the subscription's own trace, links to the commit.
    assert deliver.attributes is not None and deliver.attributes["graphql.field"] == "activityAdded"
    assert [(link.context.trace_id, link.context.span_id) for link in deliver.links] == [
        (resolver.context.trace_id, resolver.context.span_id)
    ]

    # What the client wrote stays out of the spans: no query text, no inputs.
    for span in exporter.get_finished_spans():
        for value in (span.attributes or {}).values():
            assert MARKER not in str(value) and "mutation Add" not in str(value), span.name


async def test_without_tracing_nothing_is_carried(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tracing=False)
    await asyncio.to_thread(upgrade, settings.database_url)
    application = create_app(settings)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://test"
        ) as http,
    ):
        variables = {"input": {"userId": "u1", "type": "note"}}
        response = await http.post(
            "/graphql",
            json={"query": ADD, "variables": variables},
            headers={"traceparent": INCOMING},
        )
        assert response.status_code == 200
        services: Services = application.state.services
        async with services.sessions() as session:
            entries = (await session.scalars(select(OutboxEntry))).all()
    assert entries and all(entry.trace_parent is None for entry in entries)


def _event(trace_parent: str | None) -> ChangeEvent:
    return ChangeEvent(
        outbox_id=1,
        user_id="u1",
        seq=1,
        kind=OutboxKind.ACTIVITY,
        payload=None,
        committed_at=datetime(2026, 1, 1, tzinfo=UTC),
        trace_parent=trace_parent,
    )


def test_the_trace_context_travels_with_the_published_event() -> None:
    assert ChangeEvent.decode(_event(INCOMING).encode()).trace_parent == INCOMING
    assert '"c"' not in _event(None).encode()
    assert ChangeEvent.decode(_event(None).encode()).trace_parent is None


@pytest.mark.parametrize(
    "text",
    [
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        INCOMING + "-extra",
        "x" * 10_000,
        42,
    ],
)
def test_a_malformed_trace_context_is_dropped(text: object) -> None:
    assert valid_trace_parent(text) is None
    body = _event(None).encode().replace('"p":null', f'"p":null,"c":{text!r}'.replace("'", '"'))
    assert ChangeEvent.decode(body).trace_parent is None
