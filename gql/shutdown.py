"""Graceful shutdown: drain an instance on SIGTERM without losing or gapping anything.

On SIGTERM ``checkin-realtime serve`` (:class:`GracefulServer`) runs, within
``SHUTDOWN_TIMEOUT`` seconds:

1. :meth:`Drain.begin`: ``/readyz`` answers 503 at once, so a load balancer
   stops routing here; requests that still arrive on open connections get 503
   ``SERVICE_UNAVAILABLE`` with ``Retry-After``, WebSocket handshakes HTTP 503.
2. The listening sockets close: new connections are refused.
3. In-flight HTTP requests (mutations among them) finish.
4. The relay publishes every outbox entry due now (:meth:`sync.Relay.flush`),
   so live subscribers here get what this instance committed. On PostgreSQL
   an instance that does not relay leaves that to the relaying one, and the
   next holder of the relay lease takes over what is left.
5. Open WebSockets are closed with 1001 (going away): clients subscribe again
   elsewhere with ``after`` = their last ``seq`` and miss nothing.
6. uvicorn's own shutdown and the lifespan run in what is left of the time;
   past it the process exits anyway.

:class:`DrainGate` is the ASGI middleware that counts requests and holds the
sockets; :class:`Drain` is the state it shares with ``/readyz`` and the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from collections.abc import Generator
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .codes import CloseCode, ErrorCode
from .errors import RETRY_AFTER_SECONDS

__all__ = ["Drain", "DrainGate", "GracefulServer"]

logger = logging.getLogger(__name__)

# Paths still answered while draining: the load balancer and Prometheus read them.
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Of the time left, what the steps before uvicorn's own shutdown may use.
DRAIN_SHARE = 0.7
GOING_AWAY_REASON = "server shutting down; resubscribe with after"


class _Socket:
    """One WebSocket seen by :class:`DrainGate`: its ``send``, and whether it was accepted."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.accepted = False
        self.closed = False


class Drain:
    """The shutdown state of one app. No I/O; one event loop owns it."""

    def __init__(self) -> None:
        self.draining = False
        self.requests = 0
        self._no_requests = asyncio.Event()
        self._no_requests.set()
        self._sockets: set[_Socket] = set()

    @property
    def sockets(self) -> int:
        """Open WebSockets."""
        return sum(1 for socket in self._sockets if socket.accepted and not socket.closed)

    def begin(self) -> None:
        """Turn ``/readyz`` to 503 and refuse new requests and WebSockets."""
        self.draining = True

    async def wait_requests(self, timeout: float) -> bool:
        """Wait until no HTTP request is in flight; whether that happened in time."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_requests.wait(), timeout)
        return not self.requests

    def _request_started(self) -> None:
        self.requests += 1
        self._no_requests.clear()

    def _request_ended(self) -> None:
        self.requests -= 1
        if not self.requests:
            self._no_requests.set()

    async def close_sockets(self) -> int:
        """Close every open WebSocket with 1001 (going away); returns how many.

        All at once: each close waits for the client's closing handshake, and a
        stalled client must not hold up the others.
        """
        sockets = [s for s in self._sockets if s.accepted and not s.closed]
        for socket in sockets:
            socket.closed = True
        results = await asyncio.gather(
            *(
                socket.send(
                    {
                        "type": "websocket.close",
                        "code": CloseCode.GOING_AWAY,
                        "reason": GOING_AWAY_REASON,
                    }
                )
                for socket in sockets
            ),
            return_exceptions=True,  # a client gone meanwhile
        )
        return sum(1 for result in results if not isinstance(result, BaseException))


class DrainGate:
    """ASGI middleware: counts HTTP requests, holds WebSockets, refuses both while draining."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in OPS_PATHS:
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            await _unavailable(send)
            return
        self.drain._request_started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain._request_ended()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.drain.draining:
            await _refuse_handshake(scope, receive, send)
            return
        socket = _Socket(send)

        async def guarded(message: Message) -> None:
            if socket.closed:
                # Closed with 1001 by the drain: what the app still sends goes nowhere,
                # as on a socket the client has left.
                return
            if message["type"] == "websocket.accept":
                socket.accepted = True
            await send(message)

        self.drain._sockets.add(socket)
        try:
            await self.app(scope, receive, guarded)
        finally:
            self.drain._sockets.discard(socket)


async def _unavailable(send: Send) -> None:
    body = json.dumps(
        {
            "errors": [
                {
                    "message": "the server is shutting down; retry on another instance",
                    "extensions": {"code": ErrorCode.SERVICE_UNAVAILABLE},
                }
            ]
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"connection", b"close"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse_handshake(scope: Scope, receive: Receive, send: Send) -> None:
    """HTTP 503 for a WebSocket handshake (ASGI's denial response where the server has it)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 503,
                "headers": [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"shutting down"})
    else:
        await send({"type": "websocket.close", "code": CloseCode.GOING_AWAY})


async def drain_app(app: FastAPI, timeout: float) -> None:
    """Steps 3 to 5 of the module docstring for ``app``, within ``timeout`` seconds."""
    drain: Drain = app.state.drain
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # Half the time at most: a client stalled mid-request must not take the relay's share.
    if not await drain.wait_requests(timeout / 2):
        logger.warning("shutdown: %d requests still in flight; going on", drain.requests)
    services = getattr(app.state, "services", None)
    if services is not None and not await services.relay.flush(max(0.0, deadline - loop.time())):
        logger.warning("shutdown: the outbox was not drained in time; the next relay publishes it")
    await drain.close_sockets()


class GracefulServer(uvicorn.Server):
    """uvicorn's server with the drain above before its own shutdown, all within ``timeout``.

    It also exits normally after SIGTERM or SIGINT instead of re-raising the
    signal on itself, so ``make serve`` ends without a make error.
    """

    def __init__(self, config: uvicorn.Config, *, app: FastAPI, timeout: float) -> None:
        super().__init__(config)
        self.app = app
        self.timeout = timeout

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        self.app.state.drain.begin()
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        logger.info("draining: new connections refused, in-flight requests finishing")
        try:
            await asyncio.wait_for(drain_app(self.app, self.timeout * DRAIN_SHARE), self.timeout)
        except TimeoutError:
            logger.warning("shutdown: draining took too long; closing what is left")
        left = max(0.1, deadline - loop.time())
        self.config.timeout_graceful_shutdown = max(1, int(left / 2))
        try:
            await asyncio.wait_for(super().shutdown(sockets), left)
        except TimeoutError:
            logger.error("shutdown took over SHUTDOWN_TIMEOUT=%s s; exiting anyway", self.timeout)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the signal after a graceful stop, so the process dies of
        # it and `make` reports "*** Terminated"; a drained server exits with 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
