"""The protocol handlers of both subprotocols: caps, init timeout, token expiry.

Close codes (:class:`gql.codes.CloseCode`, after graphql-transport-ws PROTOCOL.md;
1008 is RFC 6455 section 7.4.1, 1013 from the IANA registry):

* ``4400`` and ``1009``: a malformed or an oversized frame (see :mod:`gql.frames`).
* ``1013``: the instance holds ``MAX_CONNECTIONS`` sockets, or the client's address
  ``MAX_PENDING_SOCKETS_PER_ADDRESS`` sockets not yet past ``connection_init``;
  sent right after the accept, so clients see the code and retry later.
* ``1008``: at ``connection_init``, the principal already holds
  ``MAX_SOCKETS_PER_USER`` (or ``MAX_SOCKETS_PER_SERVICE``) sockets.
* ``4403``: ``connection_init`` without valid credentials, and, at expiry, the
  socket of a token that expired while it was open (after ``JWT_LEEWAY``).
* ``4408``: no ``connection_init`` within ``CONNECTION_INIT_TIMEOUT`` seconds
  (also enforced for the legacy ``graphql-ws`` subprotocol).

The legacy subprotocol gets the same codes; a refused ``connection_init`` is
answered with ``connection_error`` before the close, as that protocol expects.

Where Strawberry differs from the protocols, the handlers follow the protocols:

* ``connection_init`` may carry ``"payload": null`` (PROTOCOL.md types it
  ``Record<string, unknown> | null``); it counts as no payload.
* A document that does not parse, or names no operation of the document, is
  an ``error`` message for its id (``GRAPHQL_PARSE_FAILED`` for the first), as
  a validation error is: the socket and its other operations go on.
* ``pong`` carries the ``ping``'s payload back, as graphql-ws's server does.
* Legacy: a message of an unknown type is answered with ``error``
  ``Invalid message type!`` (for its id, if it has one), and a ``start`` with
  the id of a running operation replaces that operation without a
  ``complete``, which the client would take for the new one's end; both as
  subscriptions-transport-ws's server does.

An operation over ``MAX_WS_OPERATIONS`` (per socket) or ``MAX_SUBSCRIPTIONS_PER_USER``
(or ``_SERVICE``, per principal over all its sockets) gets an ``error`` message
with ``extensions.code`` ``SUBSCRIPTION_LIMIT`` for its id; the socket and its
other operations go on. The counts live in :mod:`gql.admission`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import cast

from graphql import GraphQLError, GraphQLFormattedError
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    PingMessage,
    PongMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage, StartMessage
from strawberry.types.unset import UnsetType

from .admission import Hold, Refused, Seat
from .codes import CloseCode, ErrorCode
from .context import Context
from .frames import LimitedWebSocketAdapter
from .multiplex import shared_frame

__all__ = ["GraphQLTransportWSHandler", "LegacyGraphQLWSHandler"]

# The messages a legacy client may send (subscriptions-transport-ws PROTOCOL.md).
_LEGACY_CLIENT_TYPES = frozenset({"connection_init", "connection_terminate", "start", "stop"})
_LEGACY_INVALID_TYPE = "Invalid message type!"


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


def _open_seat(context: Context) -> Seat:
    """This socket's seat in the app's :class:`~gql.admission.Admission`.

    Raises:
        Refused: the instance or the client's address is at its cap.
    """
    client = context.request.client if context.request is not None else None
    return context.services.admission.open_socket(client.host if client else None)


def _seat_principal(context: Context, seat: Seat) -> str | None:
    """Count the authenticated socket for its principal; why not, if it is over its cap."""
    assert context.principal is not None
    try:
        seat.authenticate(context.principal)
    except Refused as exc:
        return str(exc)
    return None


def _limit_error(refusal: Refused) -> GraphQLFormattedError:
    return GraphQLError(str(refusal), extensions={"code": ErrorCode.SUBSCRIPTION_LIMIT}).formatted


async def _take_seat(handler: GraphQLTransportWSHandler | LegacyGraphQLWSHandler) -> bool:
    """Admit the socket (its seat on the instance), or close it 1013; whether admitted."""
    try:
        handler._seat = _open_seat(handler.context)
    except Refused as exc:
        await handler.websocket.close(CloseCode.TRY_AGAIN_LATER, str(exc))
        return False
    handler._holds = {}
    handler.context.services.metrics.websocket_opened()
    return True


def _leave_seat(handler: GraphQLTransportWSHandler | LegacyGraphQLWSHandler) -> None:
    handler._seat.close()
    handler.context.services.metrics.websocket_closed()


async def _send_shared(
    handler: GraphQLTransportWSHandler | LegacyGraphQLWSHandler, message: Mapping[str, object]
) -> bool:
    """Send a result message whose payload is shared by its group (:mod:`gql.multiplex`).

    Returns:
        Whether it was sent; if not, send it the usual way.
    """
    adapter = handler.websocket
    encoder = getattr(handler.view, "response_encoder", None)
    if not isinstance(adapter, ASGIWebSocketAdapter) or encoder is None:
        return False
    frame = shared_frame(message, encoder.max_bytes)
    if frame is None:
        return False
    if isinstance(adapter, LimitedWebSocketAdapter):
        await adapter.send_frame(frame)  # counted against MAX_WS_SEND_BUFFER_BYTES
        return True
    try:
        await adapter.ws.send_text(frame)
    except WebSocketDisconnect as exc:
        raise WebSocketDisconnected from exc
    return True


class GraphQLTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with admission caps and token expiry; the init timeout is
    Strawberry's."""

    _expiry: asyncio.Task[None] | None = None
    _seat: Seat
    _holds: dict[str, Hold]

    async def handle(self) -> None:
        if not await _take_seat(self):
            return
        try:
            await super().handle()
        finally:
            _leave_seat(self)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload")
        if payload is None:
            payload = {}
        if self.connection_init_received:
            await self.websocket.close(CloseCode.TOO_MANY_INIT, "Too many initialisation requests")
            return
        if not isinstance(payload, dict):  # gql.frames refuses it first
            await self.websocket.close(CloseCode.BAD_FRAME, "Invalid connection init payload")
            return
        if self.connection_timed_out:
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        self.connection_init_received = True
        self.context.connection_params = payload
        try:
            ack = await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError:
            await self.websocket.close(CloseCode.FORBIDDEN, "Forbidden")
            return
        if (refusal := _seat_principal(self.context, self._seat)) is not None:
            await self.websocket.close(CloseCode.POLICY_VIOLATION, refusal)
            return
        if isinstance(ack, UnsetType):
            await self.send_message({"type": "connection_ack"})
        else:
            await self.send_message({"type": "connection_ack", "payload": ack})
        self.connection_acknowledged = True
        self._expiry = _arm_expiry(self.context, self._expire)

    async def handle_ping(self, message: PingMessage) -> None:
        payload = message.get("payload")
        await self.send_message(
            {"type": "pong", "payload": payload} if payload else {"type": "pong"}
        )

    async def handle_pong(self, message: PongMessage) -> None:
        """Ignored: a ``pong`` may also be an unsolicited heartbeat (PROTOCOL.md)."""

    async def send_message(self, message: Message) -> None:
        if message["type"] == "next" and await _send_shared(self, message):
            return
        await super().send_message(message)

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        # Strawberry closes the socket (4400) on a syntax error or an unknown
        # operationName; both are faults of one operation, answered by its
        # ``error`` message like a validation error.
        return None

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        operation_id = message["id"]
        if not self.connection_acknowledged or operation_id in self.operations:
            await super().handle_subscribe(message)  # 4401 or 4409
            return
        if (
            refusal := self.context.services.persisted_queries.resolve_payload(
                message["payload"]  # type: ignore[arg-type]
            )
        ) is not None:
            await self.send_message({"id": operation_id, "type": "error", "payload": [refusal]})
            return
        try:
            hold = self._seat.hold_operation()
        except Refused as exc:
            await self.send_message(
                {"id": operation_id, "type": "error", "payload": [_limit_error(exc)]}
            )
            return
        await super().handle_subscribe(message)
        operation = self.operations.get(operation_id)
        if operation is None or operation.task is None:
            hold.release()
            return
        self._holds[operation_id] = hold
        # The backstop: the task ends on every path, cancelled before it started included.
        operation.task.add_done_callback(lambda _: hold.release())

    def forget_id(self, id: str) -> None:
        self._release(id)
        super().forget_id(id)

    async def cleanup_operation(self, operation_id: str) -> None:
        self._release(operation_id)
        await super().cleanup_operation(operation_id)

    def _release(self, operation_id: str) -> None:
        # Released when the operation leaves ``operations``, so that its id and
        # its place are free at once, not when its cancelled task gets to run.
        if (hold := self._holds.pop(operation_id, None)) is not None:
            hold.release()

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
    _replacing: str | None = None
    _seat: Seat
    _holds: dict[str, Hold]

    async def handle(self) -> None:
        if not await _take_seat(self):
            return
        timeout = self.context.settings.connection_init_timeout
        self._init_timer = asyncio.create_task(self._init_deadline(timeout))
        try:
            await super().handle()
        finally:
            await _cancel(self._init_timer)
            await _cancel(self._expiry)
            _leave_seat(self)

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
        if (refusal := _seat_principal(self.context, self._seat)) is not None:
            await self.send_message({"type": "connection_error", "payload": {"message": refusal}})
            await self.websocket.close(CloseCode.POLICY_VIOLATION, refusal)
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

    async def handle_message(self, message: OperationMessage) -> None:
        if message["type"] in _LEGACY_CLIENT_TYPES:
            await super().handle_message(message)
            return
        # gql.frames let only a string id through, if any.
        operation_id = cast("dict[str, object]", message).get("id")
        error: dict[str, object] = {"type": "error", "payload": {"message": _LEGACY_INVALID_TYPE}}
        if operation_id is not None:
            error["id"] = operation_id
        await self.websocket.send_json(error)

    async def handle_start(self, message: StartMessage) -> None:
        operation_id = message["id"]
        if not self.connection_acknowledged:
            await super().handle_start(message)  # 4401
            return
        if operation_id in self.tasks:
            # The new operation replaces the running one, as in subscriptions-
            # transport-ws; end the old one first so that it does not count
            # against the new one, and without a ``complete`` for the id.
            await self._replace(operation_id)
        if (
            refusal := self.context.services.persisted_queries.resolve_payload(
                message["payload"]  # type: ignore[arg-type]
            )
        ) is not None:
            await self.send_message({"type": "error", "id": operation_id, "payload": refusal})
            return
        try:
            hold = self._seat.hold_operation()
        except Refused as exc:
            await self.send_message(
                {"type": "error", "id": operation_id, "payload": _limit_error(exc)}
            )
            return
        await super().handle_start(message)
        task = self.tasks.get(operation_id)
        if task is None:
            hold.release()
            return
        self._holds[operation_id] = hold
        task.add_done_callback(lambda _: hold.release())

    async def cleanup_operation(self, operation_id: str) -> None:
        if (hold := self._holds.pop(operation_id, None)) is not None:
            hold.release()
        await super().cleanup_operation(operation_id)

    async def _replace(self, operation_id: str) -> None:
        self._replacing = operation_id
        try:
            await self.cleanup_operation(operation_id)
        finally:
            self._replacing = None

    async def send_message(self, message: OperationMessage) -> None:
        if message["type"] == "complete" and message.get("id") == self._replacing:
            return  # the end of the operation being replaced, not of its successor
        if message["type"] == "data" and await _send_shared(self, message):
            return
        await super().send_message(message)

    async def _expire(self) -> None:
        await self.cleanup()
        await self.websocket.close(CloseCode.FORBIDDEN, "Forbidden: token expired")
