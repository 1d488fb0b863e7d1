"""Per-app services and the per-operation GraphQL context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext

from db import SessionFactory
from sync import Broadcast, Channels, Reader, RealtimeStore, Relay

from .settings import Settings

__all__ = ["Context", "Services", "get_context"]


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the lifespan opened; shared by all requests of one app."""

    settings: Settings
    sessions: SessionFactory
    store: RealtimeStore | None
    broadcast: Broadcast
    channels: Channels
    relay: Relay
    reader: Reader


class Context(BaseContext):
    """What resolvers get as ``info.context``.

    Resolvers open their own short sessions from ``sessions``: an AsyncSession
    must not be shared by fields that resolve concurrently.
    """

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.settings = services.settings
        self.sessions = services.sessions
        self.channels = services.channels
        self.reader = services.reader
        self.relay = services.relay

    async def after_commit(self, entry_ids: Sequence[int]) -> None:
        """Hand committed outbox entries to the relay and wait briefly for them.

        Waits at most ``settings.write_wait`` seconds so that a query right
        after a mutation sees it in the store; never raises.
        """
        if not entry_ids:
            return
        if self.settings.write_wait > 0:
            await self.relay.wait_published(entry_ids, timeout=self.settings.write_wait)
        else:
            self.relay.notify()


async def get_context(connection: HTTPConnection) -> Context:
    """FastAPI dependency. Takes ``HTTPConnection`` so it serves HTTP and WebSocket alike."""
    services: Services = connection.app.state.services
    return Context(services)
