"""Slowloris: clients that trickle their headers or body are dropped by a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .servers import Server, start_server

TIMEOUT = 1.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(
        tmp_path,
        settings={"REQUEST_HEADER_TIMEOUT": str(TIMEOUT), "REQUEST_BODY_TIMEOUT": str(TIMEOUT)},
    )
    try:
        yield running
    finally:
        running.stop()


async def _trickle(port: int, head: bytes, *, every: float, stop: float) -> tuple[float, bytes]:
    """Send ``head`` one byte per ``every`` seconds; (seconds until the server closed, reply)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    reply = b""
    try:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                chunk = await asyncio.wait_for(reader.read(4096), every)
            except TimeoutError:
                if time.monotonic() - started > stop:
                    break
                continue
            reply += chunk
            if not chunk:
                break
            reply += await reader.read()
            break
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started, reply


async def test_clients_trickling_headers_are_dropped_and_healthz_still_answers(
    server: Server,
) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200
    slow = [
        asyncio.create_task(_trickle(server.port, head, every=0.2, stop=10)) for _ in range(200)
    ]
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient(timeout=5) as http:
        started = time.monotonic()
        assert (await http.get(f"{server.base_url}/healthz")).status_code == 200
        assert time.monotonic() - started < 1
    results = await asyncio.gather(*slow)
    for elapsed, reply in results:
        assert elapsed < TIMEOUT + 2, elapsed
        assert reply.startswith(b"HTTP/1.1 408 "), reply[:80]
        assert b"REQUEST_TIMEOUT" in reply


async def test_a_silent_connection_is_closed(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    reply = await asyncio.wait_for(reader.read(), TIMEOUT + 3)
    assert time.monotonic() - started >= TIMEOUT * 0.9
    assert reply.startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_a_body_that_stops_short_gets_408(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: 100\r\n\r\n" + b'{"query":'
    )
    await writer.drain()
    started = time.monotonic()
    reply = await asyncio.wait_for(reader.read(), TIMEOUT + 3)
    assert time.monotonic() - started < TIMEOUT + 2
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:80]
    writer.close()
    # The request's handler sees the client go: that is no server error to log.
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(f"{server.base_url}/healthz")).status_code == 200
    log = server.log_path.read_text()
    assert "Exception in ASGI application" not in log and "Traceback" not in log, log[-2000:]


async def test_prompt_requests_on_a_kept_alive_connection_are_served(server: Server) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(3):
            response = await http.post(server.graphql_url, json={"query": "{ __typename }"})
            assert response.json() == {"data": {"__typename": "Query"}}
            # Idle between requests for less than the keep-alive timeout.
            await asyncio.sleep(TIMEOUT * 0.5)
