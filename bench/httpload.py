"""A closed-loop HTTP/1.1 load generator: N keep-alive connections, one request in flight on each.

Run by the bench as its own process::

    python -m bench.httpload --url http://127.0.0.1:8000/graphql --connections 20 \\
        --seconds 5 --body '{"query": "{ __typename }"}'

Prints one JSON line: requests completed in the measured window, req/s,
latency p50/p99 (ms), non-200 answers, and the CPU this process used as a
fraction of the window (near 1.0 would mean the generator, not the server,
was the limit). Requests are prebuilt bytes and responses are framed by
``Content-Length`` on an ``asyncio.Protocol``: a request costs a few
microseconds here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit

__all__ = ["main", "run"]


class _Connection(asyncio.Protocol):
    def __init__(self, request: bytes, window: _Window) -> None:
        self.request = request
        self.window = window
        self.buffer = bytearray()
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        if self.window.stopped:
            assert self.transport is not None
            self.transport.close()
            return
        self.sent = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end]).lower()
        at = head.find(b"content-length:")
        if at < 0:
            self.window.errors += 1
            assert self.transport is not None
            self.transport.close()
            return
        line_end = head.find(b"\r\n", at)
        length = int(head[at + 15 : line_end if line_end >= 0 else len(head)])
        if len(buf) < end + 4 + length:
            return
        status_ok = head.startswith(b"http/1.1 200")
        if self.window.first_body is None:
            self.window.first_body = bytes(buf[end + 4 : end + 4 + length])
        del buf[: end + 4 + length]
        self.window.record(time.perf_counter() - self.sent, status_ok)
        self._send()


class _Window:
    def __init__(self) -> None:
        self.measuring = False
        self.stopped = False
        self.latencies: list[float] = []
        self.errors = 0
        self.warm = 0
        self.first_body: bytes | None = None

    def record(self, latency: float, ok: bool) -> None:
        if not self.measuring:
            self.warm += 1
            return
        if ok:
            self.latencies.append(latency)
        else:
            self.errors += 1


async def run(
    url: str, *, body: str | None, connections: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """Load ``url`` (POST ``body``, else GET) and return the figures of the measured window."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")

    def request(index: int) -> bytes:
        if body is None:
            return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        data = body.replace("{c}", str(index)).encode()
        return (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode() + data

    window = _Window()
    loop = asyncio.get_running_loop()
    conns = []
    for index in range(connections):
        prebuilt = request(index)
        _, conn = await loop.create_connection(lambda: _Connection(prebuilt, window), host, port)  # noqa: B023
        conns.append(conn)
    await asyncio.sleep(warmup)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    window.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    window.measuring = False
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    window.stopped = True
    await asyncio.wait([c.lost for c in conns], timeout=10)
    ordered = sorted(window.latencies) or [0.0, 0.0]
    q = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else [0.0] * 99
    return {
        "requests": len(window.latencies),
        "seconds": round(elapsed, 3),
        "rps": len(window.latencies) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "errors": window.errors,
        "cpu_fraction": cpu / elapsed,
        "first_body": (window.first_body or b"").decode(errors="replace"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument(
        "--body", help="POST this JSON body (default: GET); {c} becomes the connection's index"
    )
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(
            args.url,
            body=args.body,
            connections=args.connections,
            seconds=args.seconds,
            warmup=args.warmup,
        )
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
