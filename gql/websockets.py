"""WebSocket hardening for both subprotocols: frame checks, init timeout, token expiry.

Close codes (:class:`gql.codes.CloseCode`, after graphql-transport-ws PROTOCOL.md; 1009 is
RFC 6455 section 7.4.1):

* ``4400``: a frame is not JSON, or not a message of the protocol's shape: not
  an object, ``type`` not a string, ``id`` not a string, ``payload`` not an
  object, or a ``subscribe``/``start`` without a string ``payload.query``.
* ``1009``: a frame is longer than ``MAX_WS_FRAME_BYTES``.
* ``4403``: ``connection_init`` without valid credentials, and, at expiry, the
  socket of a token that expired while it was open (after ``JWT_LEEWAY``).
* ``4408``: no ``connection_init`` within ``CONNECTION_INIT_TIMEOUT`` seconds
  (also enforced for the legacy ``graphql-ws`` subprotocol).

The legacy subprotocol gets the same codes; a refused ``connection_init`` is
answered with ``connection_error`` before the close, as that protocol expects.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.async_base_view import AsyncBaseHTTPView
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

__all__ = [
    "GraphQLTransportWSHandler",
    "LegacyGraphQLWSHandler",
    "LimitedWebSocketAdapter",
    "frame_problem",
]

logger = logging.getLogger(__name__)

_OPERATION_START = frozenset({"subscribe", "start"})
_OPERATION_END = frozenset({"complete", "stop"})
_MAX_ID_LENGTH = 256


def frame_problem(message: object) -> str | None:
    """Why a decoded frame is not a well-formed message of either subprotocol, or ``None``."""
    if not isinstance(message, dict):
        return "message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "message type must be a string"
    if "id" in message and not (
        isinstance(message["id"], str) and 0 < len(message["id"]) <= _MAX_ID_LENGTH
    ):
        return f"message id must be a string of 1-{_MAX_ID_LENGTH} characters"
    payload = message.get("payload")
    if payload is not None and not isinstance(payload, dict):
        return "message payload must be an object"
    if kind in _OPERATION_START | _OPERATION_END and "id" not in message:
        return f"{kind} needs an id"
    if kind in _OPERATION_START:
        if payload is None or not isinstance(payload.get("query"), str):
            return f"{kind} payload needs a string query"
        for name, kinds in (
            ("variables", dict),
            ("extensions", dict),
            ("operationName", str),
        ):
            value = payload.get(name)
            if value is not None and not isinstance(value, kinds):
                return f"{kind} payload {name} has the wrong type"
    return None


class LimitedWebSocketAdapter(ASGIWebSocketAdapter):
    """Reads frames no longer than the view's ``max_frame_bytes``, each a well-formed message.

    A bad frame closes the socket (1009 or 4400, with the reason) and ends the
    iteration, so the protocol handler shuts down its operations.
    """

    def __init__(
        self,
        view: AsyncBaseHTTPView[Any, Any, Any, Any, Any, Any, Any],
        request: WebSocket,
        response: WebSocket,
    ) -> None:
        super().__init__(view, request, response)
        self.max_frame_bytes: int = getattr(view, "max_frame_bytes", 64 * 1024)

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        while self.ws.application_state != WebSocketState.DISCONNECTED:
            try:
                text = await self.ws.receive_text()
            except WebSocketDisconnect:
                return
            except KeyError:
                await self.close(CloseCode.BAD_FRAME, "WebSocket message type must be text")
                return
            if len(text) > self.max_frame_bytes or len(text.encode()) > self.max_frame_bytes:
                await self.close(CloseCode.TOO_BIG, f"frame exceeds {self.max_frame_bytes} bytes")
                return
            try:
                message = self.view.decode_json(text)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                await self.close(CloseCode.BAD_FRAME, "WebSocket message must be valid JSON")
                return
            if (problem := frame_problem(message)) is not None:
                await self.close(CloseCode.BAD_FRAME, problem)
                return
            yield message

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        with suppress(RuntimeError, WebSocketDisconnect):
            await self.ws.close(code=code, reason=reason)


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
