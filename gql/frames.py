"""WebSocket frames: each one no longer than ``MAX_WS_FRAME_BYTES`` and a well-formed message.

A bad frame closes the socket: ``1009`` when it is too long, ``1008`` when the
socket sends more than ``WS_MESSAGE_BURST`` messages above ``WS_MESSAGES_PER_SECOND``,
``4400`` when it
is not JSON or not a message of the protocol's shape (not an object, ``type``
not a string, ``id`` not a string, ``payload`` not an object, or a
``subscribe``/``start`` without a string ``payload.query``, unless its
``payload.extensions`` names a persisted query).

Sends are bounded too: a client that stops reading leaves every operation's
frame waiting on the socket. Once the frames handed to the socket and not yet
sent would pass ``MAX_WS_SEND_BUFFER_BYTES``, the socket closes with ``1008``
(queued behind what it has not read), the new frame is dropped and the
operations waiting to send are cancelled, so their frames are freed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import suppress
from typing import Any, NoReturn

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.async_base_view import AsyncBaseHTTPView
from strawberry.http.exceptions import WebSocketDisconnected

from .codes import CloseCode

__all__ = ["LimitedWebSocketAdapter", "MessageRate", "frame_problem", "loads_json"]

_OPERATION_START = frozenset({"subscribe", "start"})
_OPERATION_END = frozenset({"complete", "stop"})
_MAX_ID_LENGTH = 256


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def loads_json(data: str | bytes) -> Any:
    """``json.loads``, but without the ``NaN``, ``Infinity`` and ``-Infinity`` it accepts.

    They are not JSON (RFC 8259 section 6): echoed back, in a ``pong`` or an
    error, they would make a message no client can decode.

    Raises:
        ValueError: ``data`` is not JSON (``JSONDecodeError`` included).
    """
    return json.loads(data, parse_constant=_refuse_constant)


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
        if payload is None or not (
            isinstance(payload.get("query"), str) or _names_persisted_query(payload)
        ):
            return f"{kind} payload needs a string query"
        for name, kinds in (
            ("variables", dict),
            ("extensions", dict),
            ("operationName", str),
        ):
            value = payload.get(name)
            if value is not None and not isinstance(value, kinds):
                return f"{kind} payload {name} has the wrong type"
    for name, value in (
        ("id", message.get("id")),
        ("query", (payload or {}).get("query")),
        ("operationName", (payload or {}).get("operationName")),
    ):
        if isinstance(value, str) and not is_unicode(value):
            # It would come back in an error message that cannot be encoded.
            return f"message {name} must be valid Unicode (a lone surrogate was found)"
    return None


def _names_persisted_query(payload: dict[str, Any]) -> bool:
    """No query, but ``extensions.persistedQuery`` (see :mod:`gql.persisted`)."""
    extensions = payload.get("extensions")
    return (
        ("query" not in payload or payload["query"] is None)
        and isinstance(extensions, dict)
        and "persistedQuery" in extensions
    )


def is_unicode(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: JSON lets a client send lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _close_reason(reason: str) -> str:
    """A close reason WebSocket can carry: valid UTF-8 of at most 123 bytes (RFC 6455 5.5.1)."""
    data = reason.encode("utf-8", "replace")[:123]
    return data.decode("utf-8", "ignore")


class MessageRate:
    """A token bucket: ``burst`` messages at once, refilled at ``per_second``."""

    __slots__ = ("_burst", "_clock", "_per_second", "_tokens", "_updated")

    def __init__(
        self, per_second: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_second = per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()

    def take(self) -> bool:
        """Spend one message; ``False`` when the socket is over its rate."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._per_second)
        self._updated = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


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
        per_second, burst = getattr(view, "message_rate", (100.0, 200))
        self._rate = MessageRate(per_second, burst)
        self.max_send_buffer_bytes: int = getattr(view, "max_send_buffer_bytes", 8 * 2**20)
        # Bytes of the frames handed to the socket whose send has not returned,
        # and the tasks waiting on those sends.
        self.unsent_bytes = 0
        self._senders: dict[asyncio.Task[Any], int] = {}
        self._reader: asyncio.Task[Any] | None = None
        self._closer: asyncio.Task[None] | None = None

    async def send_json(self, message: Mapping[str, object]) -> None:
        """Send ``message``, unless the client is too far behind (then close 1008)."""
        await self.send_frame(self.view.encode_json(message))

    async def send_frame(self, encoded: str | bytes) -> None:
        """Send an encoded frame, unless the client is too far behind (then close 1008).

        Every send goes through here, a multiplexed frame built once for its
        group (:mod:`gql.multiplex`) included, so that the budget counts it.
        """
        if self._closer is not None:
            await self._stop_sender()
        # ResponseEncoder writes ASCII (non-ASCII is escaped): characters are bytes.
        size = len(encoded)
        # The first frame always goes: MAX_WS_SEND_BUFFER_BYTES >= MAX_RESPONSE_BYTES.
        if self.unsent_bytes and self.unsent_bytes + size > self.max_send_buffer_bytes:
            self._not_reading()
            await self._stop_sender()
        task = asyncio.current_task()
        if task is not None:
            self._senders[task] = self._senders.get(task, 0) + 1
        self.unsent_bytes += size
        try:
            if isinstance(encoded, bytes):
                await self.ws.send_bytes(encoded)
            else:
                await self.ws.send_text(encoded)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc
        finally:
            self.unsent_bytes -= size
            if task is not None:
                if self._senders[task] == 1:
                    del self._senders[task]
                else:
                    self._senders[task] -= 1

    def _not_reading(self) -> None:
        """Close 1008 and cancel the operations waiting to send, which frees their frames."""
        self._closer = asyncio.ensure_future(
            self.close(
                CloseCode.POLICY_VIOLATION, "client is not reading (MAX_WS_SEND_BUFFER_BYTES)"
            )
        )
        current = asyncio.current_task()
        for task in self._senders:
            # The reader runs the protocol handler: it is stopped by the disconnect.
            if task is not current and task is not self._reader:
                task.cancel()

    async def _stop_sender(self) -> NoReturn:
        """End the calling task's part: the reader stops, an operation is cancelled."""
        task = asyncio.current_task()
        if task is None or task is self._reader:
            raise WebSocketDisconnected
        task.cancel()
        await asyncio.sleep(0)  # raises CancelledError here
        raise WebSocketDisconnected  # pragma: no cover (the cancel is not swallowed)

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        self._reader = asyncio.current_task()
        while self.ws.application_state != WebSocketState.DISCONNECTED:
            try:
                text = await self.ws.receive_text()
            except WebSocketDisconnect:
                return
            except KeyError:
                await self.close(CloseCode.BAD_FRAME, "WebSocket message type must be text")
                return
            if self._closer is not None:
                return
            if not self._rate.take():
                await self.close(
                    CloseCode.POLICY_VIOLATION, "over WS_MESSAGES_PER_SECOND messages per second"
                )
                return
            if len(text) > self.max_frame_bytes or len(text.encode()) > self.max_frame_bytes:
                await self.close(CloseCode.TOO_BIG, f"frame exceeds {self.max_frame_bytes} bytes")
                return
            try:
                message = loads_json(text)
            except (ValueError, RecursionError):  # JSONDecodeError, NaN and Infinity
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
            await self.ws.close(code=code, reason=_close_reason(reason))
