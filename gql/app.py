"""The ASGI application: ``create_app(settings)`` and the one lifespan that owns every resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from db import create_engine, create_session_factory
from db.leases import relay_lease
from sync import Broadcast, Channels, Reader, RealtimeStore, Relay, create_store
from sync.metrics import RelayMetrics

from .auth import AuthenticationError, Authenticator
from .body_limit import BodyLimit
from .codes import ErrorCode
from .context import Services
from .graphiql import ASSETS_DIR, ASSETS_PATH
from .router import create_router
from .schema import create_schema
from .settings import Settings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def _lifespan(settings: Settings, registry: CollectorRegistry) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        try:
            async with AsyncExitStack() as stack:
                sessions = create_session_factory(engine)
                store = create_store(settings.realtime_url, window=settings.store_window)
                if store is not None:
                    await stack.enter_async_context(store)
                broadcast = await stack.enter_async_context(
                    Broadcast(settings.broadcast_url, max_queue=settings.subscriber_queue)
                )
                channels = Channels(broadcast, sessions=sessions)
                # PostgreSQL: instances share the database, and only the holder
                # of this lease relays. SQLite: None, the one process relays.
                lease = relay_lease(settings.database_url)
                if lease is not None:
                    await stack.enter_async_context(lease)
                relay = await stack.enter_async_context(
                    Relay(
                        metrics=RelayMetrics(registry),
                        sessions=sessions,
                        store=store,
                        channels=channels,
                        batch_size=settings.relay_batch_size,
                        poll_interval=settings.relay_poll_interval,
                        retention=settings.outbox_retention,
                        lease=lease,
                    )
                )
                services = Services(
                    settings=settings,
                    sessions=sessions,
                    store=store,
                    broadcast=broadcast,
                    channels=channels,
                    relay=relay,
                    reader=Reader(
                        sessions=sessions,
                        store=store,
                        store_current=_store_current(store, relay),
                    ),
                    authenticator=Authenticator(settings),
                )
                app.state.services = services
                try:
                    yield
                finally:
                    del app.state.services
        finally:
            await engine.dispose()

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. No I/O happens until the lifespan starts.

    Routes:
        ``/graphql``: GraphQL over HTTP (GET for queries, POST), GraphiQL on
        GET from a browser, and WebSockets with the ``graphql-transport-ws``
        and legacy ``graphql-ws`` subprotocols.
        ``/healthz``: the process is up. ``/readyz``: database, store and
        broker each answer; 503 otherwise. Its body is
        ``{"ready": bool, "checks": {"database", "store", "broker", "relay": bool},
        "relay_leader": bool}``; ``relay_leader`` tells which instance relays
        the outbox and does not affect readiness.
        ``/metrics``: Prometheus metrics (see :class:`ServiceMetrics`, :mod:`sync.metrics`).

    Security (docs/security.md): an invalid ``Authorization`` header gets 401;
    bodies over ``MAX_BODY_BYTES`` get 413. Without credentials configured
    the app runs in dev mode, where everyone is an admin, and says so loudly.
    """
    settings = settings or Settings()
    if not settings.auth_enabled:
        logger.warning(
            "DEV MODE: no JWT_SECRET, JWT_JWKS_URL or SERVICE_API_KEYS is set, so every "
            "client is an admin. Serve on loopback only; set JWT_SECRET for anything else."
        )
    elif (
        settings.production
        and (settings.jwt_secret or settings.jwt_jwks_url)
        and (settings.jwt_audience is None or settings.jwt_issuer is None)
    ):
        logger.warning(
            "JWT_AUDIENCE or JWT_ISSUER is not set: tokens the same key signed for another "
            "audience or by another issuer would be accepted"
        )
    registry = CollectorRegistry()
    app = FastAPI(title="checkin-realtime", lifespan=_lifespan(settings, registry))
    app.state.metrics = ServiceMetrics(registry)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(AuthenticationError, _unauthenticated)
    app.include_router(create_router(settings, create_schema(settings)), prefix="/graphql")
    if settings.graphiql and not settings.production:
        app.mount(
            ASSETS_PATH.rstrip("/"), StaticFiles(directory=ASSETS_DIR), name="graphiql-assets"
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        checks = {
            "database": await _database_ok(services),
            "store": True if services.store is None else await _store_ok(services),
            "broker": services.broadcast.healthy,
            "relay": services.relay.running,
        }
        ready = all(checks.values())
        body = {"ready": ready, "checks": checks, "relay_leader": services.relay.leading}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        services: Services = request.app.state.services
        await request.app.state.metrics.refresh(services)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _unauthenticated(request: Request, exc: Exception) -> JSONResponse:
    # RFC 6750 section 3.1: an invalid token is answered with 401 and WWW-Authenticate.
    return JSONResponse(
        {"errors": [{"message": str(exc), "extensions": {"code": ErrorCode.UNAUTHENTICATED}}]},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


class ServiceMetrics(Collector):
    """Metrics read from the running services at scrape time (no global state).

    Gauges: ``checkin_outbox_backlog`` (entries not yet published),
    ``checkin_outbox_oldest_pending_seconds``, ``checkin_broker_connected`` (1/0),
    ``checkin_broadcast_channels``, ``checkin_broadcast_subscribers``,
    ``checkin_broadcast_queued_events`` (unread events in all inboxes).
    Counters: ``checkin_broadcast_overflows_total`` (subscribers cut off for
    reading too slowly), ``checkin_broker_disconnects_total``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._values: dict[str, float] = {}
        registry.register(self)

    async def refresh(self, services: Services) -> None:
        try:
            count, oldest = await services.relay.backlog()
        except Exception as exc:
            logger.warning("metrics: outbox backlog query failed: %r", exc)
        else:
            self._values["checkin_outbox_backlog"] = count
            self._values["checkin_outbox_oldest_pending_seconds"] = oldest
        broadcast = services.broadcast
        self._values.update(
            {
                "checkin_broker_connected": 1 if broadcast.healthy else 0,
                "checkin_broadcast_channels": broadcast.channels,
                "checkin_broadcast_subscribers": broadcast.subscribers,
                "checkin_broadcast_queued_events": broadcast.queued,
                "checkin_broadcast_overflows": broadcast.overflows,
                "checkin_broker_disconnects": broadcast.disconnects,
            }
        )

    HELP: ClassVar[dict[str, str]] = {
        "checkin_outbox_backlog": "Outbox entries not yet published.",
        "checkin_outbox_oldest_pending_seconds": "Age of the oldest unpublished entry (s).",
        "checkin_broker_connected": "1 while the broker connection is up.",
        "checkin_broadcast_channels": "Channels with a local subscriber.",
        "checkin_broadcast_subscribers": "Local channel subscribers.",
        "checkin_broadcast_queued_events": "Unread events in all subscriber inboxes.",
        "checkin_broadcast_overflows": "Subscribers cut off for reading too slowly.",
        "checkin_broker_disconnects": "Broker connections lost.",
    }
    COUNTERS: ClassVar[frozenset[str]] = frozenset(
        {"checkin_broadcast_overflows", "checkin_broker_disconnects"}
    )

    def collect(self) -> Iterator[Metric]:
        for name, value in self._values.items():
            family = CounterMetricFamily if name in self.COUNTERS else GaugeMetricFamily
            yield family(name, self.HELP[name], value=value)


def _store_current(store: RealtimeStore | None, relay: Relay) -> Callable[[], bool]:
    """A process-local store is current only where the relay runs (see RealtimeStore.shared)."""
    if store is None or store.shared:
        return lambda: True
    return lambda: relay.leading


async def _database_ok(services: Services) -> bool:
    try:
        async with services.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readiness: database check failed: %r", exc)
        return False
    return True


async def _store_ok(services: Services) -> bool:
    assert services.store is not None
    try:
        return await services.store.ping()
    except Exception as exc:
        logger.warning("readiness: store check failed: %r", exc)
        return False
