"""ASGI middleware that refuses HTTP request bodies over ``MAX_BODY_BYTES`` with 413.

Being the layer that reads bodies, it also ends quietly a request whose client
disconnected mid-body, instead of logging it as a server error.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .codes import ErrorCode
from .http_errors import error_body
from .negotiation import JSON, accept_header, content_type, negotiate

__all__ = ["BodyLimit"]


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: an HTTP body over ``max_bytes`` gets 413 and a GraphQL-shaped error,
    ``PAYLOAD_TOO_LARGE``, in the media type the request accepts (:mod:`gql.negotiation`).

    Checks ``Content-Length`` first, then counts the bytes actually received,
    so a chunked body cannot slip past.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await self._refuse(scope, send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, send)
        except ClientDisconnect:
            # The client went away mid-body (or REQUEST_BODY_TIMEOUT dropped it):
            # nobody is left to answer, and it is no error of the service's.
            return

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = error_body(
            f"request body exceeds {self.max_bytes} bytes", ErrorCode.PAYLOAD_TOO_LARGE
        )
        media_type = negotiate(accept_header(scope["headers"])) or JSON
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", content_type(media_type).encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
