"""Per-app services and the per-operation GraphQL context."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext

from db import SessionFactory
from sync import Channels, Hub, Reader, RealtimeStore, Relay, Writer

from .admission import Admission
from .auth import Authenticator, Principal
from .metrics import ApiMetrics
from .persisted import PersistedQueries
from .settings import Settings

__all__ = ["Context", "Services", "get_context"]


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the lifespan opened; shared by all requests of one app."""

    settings: Settings
    sessions: SessionFactory
    store: RealtimeStore | None
    hub: Hub
    channels: Channels
    relay: Relay
    writer: Writer
    reader: Reader
    authenticator: Authenticator
    admission: Admission
    persisted_queries: PersistedQueries
    metrics: ApiMetrics


class Context(BaseContext):
    """What resolvers get as ``info.context``.

    Resolvers open their own short sessions from ``sessions``: an AsyncSession
    must not be shared by fields that resolve concurrently. Mutations write
    through ``writer.transaction()``, which also waits for read-your-writes.

    ``principal`` is who is asking (``None``: nobody authenticated); over
    WebSocket it is set by ``connection_init`` and shared by the socket's
    operations. :mod:`gql.permissions` reads it; resolvers need not.
    """

    def __init__(self, services: Services, principal: Principal | None = None) -> None:
        super().__init__()
        self.services = services
        self.principal = principal
        self.settings = services.settings
        self.sessions = services.sessions
        self.channels = services.channels
        self.reader = services.reader
        self.writer = services.writer


async def get_context(connection: HTTPConnection) -> Context:
    """FastAPI dependency. Takes ``HTTPConnection`` so it serves HTTP and WebSocket alike.

    Over HTTP the principal comes from the ``Authorization`` header; over
    WebSocket from ``connection_init`` (see ``gql.router.Router.on_ws_connect``),
    except in dev mode, where everyone is an admin.

    Raises:
        AuthenticationError: an HTTP ``Authorization`` header that is not a valid
            token (answered with 401 by the app).
    """
    services: Services = connection.app.state.services
    authenticator = services.authenticator
    if connection.scope["type"] == "websocket":
        principal = await authenticator.authenticate(None) if authenticator.dev_mode else None
    else:
        principal = await authenticator.authenticate(connection.headers.get("authorization"))
    return Context(services, principal)
