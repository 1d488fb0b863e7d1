"""Request deadlines at the connection, where uvicorn has none: slow clients are dropped.

uvicorn arms no timer until a response has been sent, so a client that
connects and sends its request headers one byte a second (slowloris) holds a
connection and a file descriptor for as long as it likes; two thousand such
clients exhaust a default descriptor limit. The application cannot help: it
only sees a request once its headers are complete.

:func:`timed_protocol` builds a subclass of uvicorn's httptools protocol (the
one ``uvicorn[standard]`` selects) with two deadlines:

* ``header_timeout``: from the first byte of a request (or the connection,
  for the first request) to the end of its headers;
* ``body_timeout``: from the end of the headers to the end of the body.

A request that misses either is answered ``408 Request Timeout`` with
``Connection: close`` (RFC 9110 section 15.5.9) and the connection is
closed. A WebSocket handshake is a request too: its headers get the same
deadline, and after the upgrade ``CONNECTION_INIT_TIMEOUT`` applies.

The subclass hooks uvicorn's parser callbacks (``on_message_begin``,
``on_headers_complete``, ``on_message_complete``, ``handle_websocket_upgrade``),
which is why ``uvicorn`` is pinned to a minor range in ``pyproject.toml``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .codes import ErrorCode
from .http_errors import error_body
from .negotiation import JSON, accept_header, content_type, negotiate

__all__ = ["timed_protocol"]

logger = logging.getLogger(__name__)

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: %s\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
_BODY = error_body("request not received in time", ErrorCode.REQUEST_TIMEOUT)


def _timeout_response(headers: list[tuple[bytes, bytes]] | None) -> bytes:
    """The 408, in the media type the request accepts (its headers, once they are complete)."""
    media_type = negotiate(accept_header(headers or [])) or JSON
    return _TIMEOUT_RESPONSE % (content_type(media_type).encode(), len(_BODY), _BODY)


def timed_protocol(*, header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """An httptools protocol class that drops requests slower than these deadlines (seconds)."""

    class TimedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(header_timeout, "headers")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm(header_timeout, "headers")

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._arm(body_timeout, "body")

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def handle_websocket_upgrade(self) -> None:
            self._disarm()
            super().handle_websocket_upgrade()

        def _arm(self, seconds: float, part: str) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired, part)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self, part: str) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            client: Any = self.client
            logger.info("dropped %s: request %s not received in time", client, part)
            if self.cycle is None or not self.cycle.response_started:
                # The Accept header counts only once the headers are complete.
                headers = self.headers if part == "body" else None
                self.transport.write(_timeout_response(headers))
            self.transport.close()

    return TimedHttpToolsProtocol
