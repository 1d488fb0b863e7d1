"""The protocol handlers of both subprotocols: init timeout, token expiry.

Close codes (:class:`gql.codes.CloseCode`, after graphql-transport-ws PROTOCOL.md):

* ``4400`` and ``1009``: a malformed or an oversized frame (see :mod:`gql.frames`).
* ``4403``: ``connection_init`` without valid credentials, and, at expiry, the
  socket of a token that expired while it was open (after ``JWT_LEEWAY``).
* ``4408``: no ``connection_init`` within ``CONNECTION_INIT_TIMEOUT`` seconds
  (also enforced for the legacy ``graphql-ws`` subprotocol).

The legacy subprotocol gets the same codes; a refused ``connection_init`` is
answered with ``connection_error`` before the close, as that protocol expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime

from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.types.unset import UnsetType

from .codes import CloseCode
from .context import Context

__all__ = ["GraphQLTransportWSHandler", "LegacyGraphQLWSHandler"]


def _arm_expiry(
    context: Context, on_expiry: Callable[[], Awaitable[None]]
) -> asyncio.Task[None] | None:
    """Start a task that awaits ``on_expiry`` when the principal's token expires."""
    principal = context.principal
    if principal is None or principal.expires_at is None:
        return None
    deadline = principal.expires_at.timestamp() + context.settings.jwt_leeway

    async def wait() -> None:
        await asyncio.sleep(max(0.0, deadline - datetime.now(UTC).timestamp()))
        await on_expiry()

    return asyncio.create_task(wait())


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None or task is asyncio.current_task():
        return
    task.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await task


class GraphQLTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with token expiry; init timeout and 4403 on refusal are Strawberry's."""

    _expiry: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._expiry is None:
            self._expiry = _arm_expiry(self.context, self._expire)

    async def _expire(self) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        await self.websocket.close(CloseCode.FORBIDDEN, "Forbidden: token expired")

    async def shutdown(self) -> None:
        await _cancel(self._expiry)
        await super().shutdown()


class LegacyGraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws (subscriptions-transport-ws) with the same guarantees as the new one."""

    _expiry: asyncio.Task[None] | None = None
    _init_timer: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        timeout = self.context.settings.connection_init_timeout
        self._init_timer = asyncio.create_task(self._init_deadline(timeout))
        try:
            await super().handle()
        finally:
            await _cancel(self._init_timer)
            await _cancel(self._expiry)

    async def _init_deadline(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        if not self.connection_acknowledged:
            await self.websocket.close(CloseCode.INIT_TIMEOUT, "Connection initialisation timeout")

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        payload = message.get("payload")
        if self.connection_acknowledged:
            await self.websocket.close(CloseCode.TOO_MANY_INIT, "Too many initialisation requests")
            return
        self.context.connection_params = payload
        try:
            ack = await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError as exc:
            await self.send_message({"type": "connection_error", "payload": exc.payload})
            await self.websocket.close(CloseCode.FORBIDDEN, "Forbidden")
            return
        if isinstance(ack, UnsetType) or ack is None:
            await self.send_message({"type": "connection_ack"})
        else:
            await self.send_message({"type": "connection_ack", "payload": ack})
        self.connection_acknowledged = True
        await _cancel(self._init_timer)
        if self.keep_alive:
            self.keep_alive_task = asyncio.create_task(self.handle_keep_alive())
        self._expiry = _arm_expiry(self.context, self._expire)

    async def _expire(self) -> None:
        await self.cleanup()
        await self.websocket.close(CloseCode.FORBIDDEN, "Forbidden: token expired")
