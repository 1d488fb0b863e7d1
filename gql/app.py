"""The ASGI application: ``create_app(settings)`` and the one lifespan that owns every resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from strawberry.extensions import SchemaExtension

from db import create_engine, create_session_factory
from db.leases import relay_lease
from sync import (
    Channels,
    Escalator,
    Hub,
    Leadership,
    Reader,
    RealtimeStore,
    create_store,
    store_reset,
)
from sync.metrics import RelayMetrics
from sync.tracing import TracedMirror, TracedPublisher, TracedRelay, Tracing

from .admission import Admission
from .auth import AuthenticationError, Authenticator
from .body_limit import BodyLimit
from .codes import ErrorCode
from .context import Services
from .dashboard_page import create_page_router
from .dashboard_page import enabled as dashboard_page_enabled
from .graphiql import ASSETS_DIR, ASSETS_PATH
from .http_errors import HTTPError, error_response
from .logs import RequestId, safe_url
from .metrics import ApiMetrics, OperationMetrics
from .negotiation import negotiate
from .ops import create_ops_router
from .persisted import PersistedQueries
from .router import create_router
from .schema import create_schema
from .settings import Settings
from .tracing import install_global_provider, schema_extensions

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
from .shutdown import Drain, DrainGate

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def _lifespan(
    settings: Settings, registry: CollectorRegistry, metrics: ApiMetrics, tracing: Tracing
) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        logger.info("database: %s", safe_url(settings.database_url))
        try:
            async with AsyncExitStack() as stack:
                stack.callback(metrics.close)
                if tracing.enabled and not tracing.has_provider:
                    install_global_provider()
                sessions = create_session_factory(engine)
                store = create_store(
                    settings.realtime_url,
                    window=settings.store_window,
                    max_bytes=settings.store_max_bytes,
                )
                if store is not None:
                    await stack.enter_async_context(store)
                    logger.info("realtime store: %s", safe_url(settings.realtime_url))
                else:
                    logger.info("realtime store: none (queries read the database)")
                hub = await stack.enter_async_context(
                    Hub(settings.broadcast_url, max_queue=settings.subscriber_queue)
                )
                logger.info("broker: %s", safe_url(settings.broadcast_url))
                channels = Channels(hub, sessions=sessions)
                # PostgreSQL: instances share the database, and only the holder
                # of this lease relays. SQLite: None, the one process relays.
                lease = relay_lease(settings.database_url)
                if lease is not None:
                    await stack.enter_async_context(lease)
                leadership = Leadership(lease, on_takeover=store_reset(store))
                # Missed check-ins escalate where the relay runs, woken by published next_dues.
                escalator = Escalator(
                    sessions=sessions,
                    policy=settings.escalation_policy,
                    leadership=leadership,
                    standby_interval=settings.relay_poll_interval,
                )
                relay = await stack.enter_async_context(
                    TracedRelay(
                        tracing=tracing,
                        sessions=sessions,
                        mirror=TracedMirror(
                            tracing=tracing,
                            sessions=sessions,
                            store=store,
                            batch_size=settings.relay_batch_size,
                        ),
                        publisher=TracedPublisher(escalator.watching(channels), tracing),
                        leadership=leadership,
                        metrics=RelayMetrics(registry),
                        batch_size=settings.relay_batch_size,
                        poll_interval=settings.relay_poll_interval,
                        retention=settings.outbox_retention,
                    )
                )
                logger.info(
                    "outbox relay: %s",
                    "started" if lease is None else "started, relaying while it holds the lease",
                )
                escalator.wake = relay.notify
                await stack.enter_async_context(escalator)
                services = Services(
                    settings=settings,
                    sessions=sessions,
                    store=store,
                    hub=hub,
                    channels=channels,
                    relay=relay,
                    writer=relay.writer(timeout=settings.write_wait),
                    reader=Reader(
                        sessions=sessions,
                        store=store,
                        store_current=_store_current(store, leadership),
                    ),
                    authenticator=Authenticator(settings),
                    admission=Admission(settings),
                    persisted_queries=PersistedQueries(
                        cache_size=settings.apq_cache_size,
                        max_query_bytes=settings.apq_max_query_bytes,
                        manifest=settings.persisted_queries_manifest,
                    ),
                    metrics=metrics,
                )
                app.state.services = services
                try:
                    yield
                finally:
                    del app.state.services
        finally:
            await engine.dispose()

    return lifespan


def create_app(
    settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """Build the app. No I/O happens until the lifespan starts.

    With ``TRACING`` on, spans go to ``tracer_provider`` (default: the global
    one, see :mod:`gql.tracing`).

    Routes:
        ``/graphql``: GraphQL over HTTP (GET for queries, POST), GraphiQL on
        GET from a browser, and WebSockets with the ``graphql-transport-ws``
        and legacy ``graphql-ws`` subprotocols.
        ``/healthz``, ``/readyz`` and ``/metrics``: see :mod:`gql.ops`.
        ``/dashboard``: the reference page, see :mod:`gql.dashboard_page`.

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
    tracing = Tracing(tracer_provider, enabled=settings.tracing)
    metrics = ApiMetrics(registry, tracing=tracing)
    extensions: list[Callable[[], SchemaExtension]] = [OperationMetrics]
    if tracing.enabled:
        extensions += schema_extensions(tracer_provider)
    app = FastAPI(
        title="checkin-realtime",
        lifespan=_lifespan(settings, registry, metrics, tracing),
        # Without the schema FastAPI serves no /docs or /redoc (Swagger UI loads from a CDN).
        openapi_url="/openapi.json" if settings.openapi_docs and not settings.production else None,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Outermost: on SIGTERM it refuses new work and closes sockets with 1001 (gql/shutdown.py).
    app.state.drain = Drain()
    app.add_middleware(DrainGate, drain=app.state.drain)
    # Outermost: every response, the body limit's and the 401s included, echoes the id.
    app.add_middleware(RequestId)
    app.add_exception_handler(AuthenticationError, _unauthenticated)
    app.include_router(
        create_router(settings, create_schema(settings, extensions=extensions)), prefix="/graphql"
    )
    if settings.graphiql and not settings.production:
        app.mount(
            ASSETS_PATH.rstrip("/"), StaticFiles(directory=ASSETS_DIR), name="graphiql-assets"
        )
    if dashboard_page_enabled(settings):
        app.include_router(create_page_router())
    app.include_router(create_ops_router(registry))

    return app


async def _unauthenticated(request: Request, exc: Exception) -> Response:
    # RFC 6750 section 3.1: an invalid token is answered with 401 and WWW-Authenticate.
    error = HTTPError(
        401,
        ErrorCode.UNAUTHENTICATED,
        str(exc),
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
    return error_response(error, negotiate(request.headers.get("accept")))


def _store_current(store: RealtimeStore | None, leadership: Leadership) -> Callable[[], bool]:
    """A process-local store is current only where the relay runs (see RealtimeStore.shared)."""
    if store is None or store.shared:
        return lambda: True
    return lambda: leadership.leading
