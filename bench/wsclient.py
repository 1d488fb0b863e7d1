"""A crowd of graphql-transport-ws subscribers in one process, as cheap per message as it gets.

Run by the bench as its own process (the server under test has the other
core), so that the clients are not what limits a figure::

    python -m bench.wsclient --url ws://127.0.0.1:8000/graphql --sockets 1000 \\
        --payload '{"query": "subscription { activityAdded(userId: \\"u\\") { seq } }"}'

Each socket sends ``connection_init``, waits for ``connection_ack`` and sends one
``subscribe`` (``{i}`` in the payload is replaced by the socket's index). Then
the process prints ``{"ready": N, ...}`` and answers commands on stdin, one a
line, each with one JSON line on stdout:

- ``reset``: forget what arrived so far.
- ``wait N SECONDS``: return once N ``next`` messages arrived since the reset
  (or the time is up), with the statistics.
- ``report``: the statistics now.
- ``quit``: close and exit.

The WebSocket framing is written here on an ``asyncio.Protocol`` (no
per-message coroutine, no deflate): a ``next`` message costs a substring test,
or in ``--latency`` mode one ``json.loads``. Latency is the receive time less
the event's ``timestamp`` field (the server stamps it at the write, on the
same clock).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import statistics
import sys
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Crowd", "main"]

PING = b'{"type":"ping"}'
PONG = b'{"type":"pong"}'


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame; the mask is zero (the server cannot tell, and it costs nothing)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class _Socket(asyncio.Protocol):
    def __init__(self, crowd: Crowd, request: bytes) -> None:
        self.crowd = crowd
        self.request = request
        self.buffer = bytearray()
        self.upgraded = False
        self.acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.crowd.closed += 1
        if not self.acked.done():
            self.acked.set_exception(ConnectionError(f"closed before connection_ack: {exc}"))

    def send(self, text: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_frame(0x1, text))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos = 0
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[: buf.find(b"\r\n")]:
                self.acked.set_exception(ConnectionError(bytes(buf[:200]).decode(errors="replace")))
                return
            self.upgraded = True
            self.send(b'{"type":"connection_init","payload":{}}')
            pos = end + 4
        size = len(buf)
        while size - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            start = pos + 2
            if n == 126:
                n, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif n == 127:
                n, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if size < start + n:
                break
            payload = bytes(buf[start : start + n])
            pos = start + n
            if opcode == 0x1:
                self._text(payload)
            elif opcode == 0x9:
                assert self.transport is not None
                self.transport.write(_frame(0xA, payload))
            elif opcode == 0x8:
                assert self.transport is not None
                self.transport.close()
        del buf[:pos]

    def _text(self, payload: bytes) -> None:
        if b'"next"' in payload and b'"errors"' not in payload:
            self.crowd.on_next(payload)
        elif b'"connection_ack"' in payload:
            if not self.acked.done():
                self.acked.set_result(None)
        elif payload.replace(b" ", b"") == PING:
            self.send(PONG)
        else:
            self.crowd.on_other(payload)


class Crowd:
    """The sockets and what arrived on them since the last reset."""

    def __init__(self, *, latency_field: str | None) -> None:
        self.latency_field = latency_field
        self.sockets: list[_Socket] = []
        self.closed = 0
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.other = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies: list[float] = []
        self.samples: list[str] = []
        self.reached: asyncio.Event = asyncio.Event()
        self.target = 0

    def on_next(self, payload: bytes) -> None:
        now = time.monotonic()
        if not self.count:
            self.first = now
        self.last = now
        self.count += 1
        if self.latency_field is not None:
            message = json.loads(payload)
            data = (message["payload"].get("data") or {}).get(self.latency_field)
            if data is None:
                self.on_other(payload)
            else:
                stamp = datetime.fromisoformat(data["timestamp"]).timestamp()
                self.latencies.append(time.time() - stamp)
        if self.target and self.count >= self.target:
            self.reached.set()

    def on_other(self, payload: bytes) -> None:
        self.other += 1
        if len(self.samples) < 3:
            self.samples.append(payload[:300].decode(errors="replace"))

    async def open(
        self, url: str, *, sockets: int, payload: str, concurrency: int, protocol: str
    ) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with gate:
                _, sock = await loop.create_connection(lambda: _Socket(self, request), host, port)
                await asyncio.wait_for(sock.acked, 60)
                subscribe = {"id": "1", "type": "subscribe", "payload": json.loads(payload)}
                sock.send(json.dumps(subscribe).replace("{i}", str(index)).encode())
                self.sockets.append(sock)

        await asyncio.gather(*(one(i) for i in range(sockets)))

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out: dict[str, Any] = {
            "count": self.count,
            "other": self.other,
            "samples": self.samples,
            "first": self.first,
            "last": self.last,
            "closed": self.closed,
            "cpu": usage.ru_utime + usage.ru_stime,
        }
        if self.latencies:
            ordered = sorted(self.latencies)
            q = (
                statistics.quantiles(ordered, n=100, method="inclusive")
                if len(ordered) > 1
                else [ordered[0]] * 99
            )
            out["latency_ms"] = {"n": len(ordered), "p50": q[49] * 1000, "p99": q[98] * 1000}
        return out

    async def wait(self, count: int, seconds: float) -> None:
        self.target = count
        if self.count < count:
            try:
                await asyncio.wait_for(self.reached.wait(), seconds)
            except TimeoutError:
                pass


async def _serve(args: argparse.Namespace) -> None:
    crowd = Crowd(latency_field=args.latency)
    started = time.monotonic()
    await crowd.open(
        args.url,
        sockets=args.sockets,
        payload=args.payload,
        concurrency=args.concurrency,
        protocol=args.protocol,
    )
    _emit({"ready": len(crowd.sockets), "open_seconds": round(time.monotonic() - started, 2)})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        command = line[0]
        if command == "reset":
            crowd.reset()
            _emit({"reset": True})
        elif command == "wait":
            await crowd.wait(int(line[1]), float(line[2]))
            _emit(crowd.stats())
        elif command == "report":
            _emit(crowd.stats())
        else:
            break
    for sock in crowd.sockets:
        if sock.transport is not None:
            sock.transport.close()


def _emit(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--sockets", type=int, default=1)
    parser.add_argument("--payload", required=True, help="the subscribe payload, JSON")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes at once")
    parser.add_argument("--protocol", default="graphql-transport-ws")
    parser.add_argument("--latency", metavar="FIELD", help="measure FIELD's timestamp latency")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
