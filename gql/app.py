"""The ASGI application: ``create_app(settings)`` and the one lifespan that owns every resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from db import create_engine, create_session_factory
from db.leases import relay_lease
from sync import Broadcast, Channels, Reader, RealtimeStore, Relay, create_store

from .context import Services, get_context
from .schema import create_schema
from .settings import Settings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def _lifespan(settings: Settings) -> Any:
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
    """
    settings = settings or Settings()
    app = FastAPI(title="checkin-realtime", lifespan=_lifespan(settings))
    router: GraphQLRouter[Any, None] = GraphQLRouter(
        create_schema(),
        graphql_ide="graphiql" if settings.graphiql else None,
        context_getter=get_context,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout),
        allowed_origins=settings.allowed_origins,
    )
    app.include_router(router, prefix="/graphql")

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

    return app


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
