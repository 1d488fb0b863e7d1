"""Amplification (issue 12, finding 3) against a real server: clients that never read.

A user holds 110 activities of about 15 KB of metadata. Forty clients send the
query of the finding (15 pages of 100 metadata values: 25.6 MB each before the
cost model weighed metadata) and forty send the biggest query the limits still
allow; none of them reads a byte of its response. The server's RSS must grow
by less than :data:`BOUND`, the worst case stated in docs/security.md.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gql import Settings

from .servers import Server, start_server

CLIENTS = 40
ACTIVITIES = 110
METADATA = {"blob": "x" * 14_900}
MAX_RESPONSE_BYTES = Settings.model_construct().max_response_bytes
MIB = 1024 * 1024
# Each stuck response may hold up to MAX_RESPONSE_BYTES in the server (docs/security.md),
# plus room for the executions in flight and the allocator's slack.
BOUND = CLIENTS * MAX_RESPONSE_BYTES + 64 * MIB


def page(alias: str, first: int) -> str:
    selection = "edges { node { metadata } }"
    return f'{alias}: recentActivities(userId: "u1", first: {first}) {{ {selection} }}'


AMPLIFICATION = "{ " + " ".join(page(f"a{i}", 100) for i in range(15)) + " }"
# Cost 2 x (1 + 100 x 18) + (1 + 77 x 18) = 4989, the most under MAX_QUERY_COST=5000.
BIGGEST = "{ " + page("a", 100) + " " + page("b", 100) + " " + page("c", 77) + " }"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def fill(server: Server) -> None:
    mutation = (
        'mutation($m: JSON) { addActivity(input: {userId: "u1", type: "note", metadata: $m}) '
        "{ seq } }"
    )
    with httpx.Client(timeout=30) as http:
        for _ in range(ACTIVITIES):
            body = http.post(
                server.graphql_url, json={"query": mutation, "variables": {"m": METADATA}}
            ).json()
            assert "errors" not in body, body


def request(query: str) -> bytes:
    body = json.dumps({"query": query}).encode()
    return (
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def send_without_reading(port: int, payload: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window: the response stays in the server, not in our kernel buffer.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(payload)
    return sock


def wait_answered(sockets: list[socket.socket], timeout: float) -> None:
    """Until the server has started each response (each socket readable; nothing is read)."""
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while selector.get_map():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{len(selector.get_map())} requests never answered"
            for key, _ in selector.select(remaining):
                selector.unregister(key.fileobj)


@pytest.mark.timeout(120)
def test_clients_that_never_read_cannot_grow_memory_past_the_bound(server: Server) -> None:
    fill(server)
    with httpx.Client(timeout=30) as http:
        biggest = http.post(server.graphql_url, json={"query": BIGGEST})
        one_more = http.post(server.graphql_url, json={"query": BIGGEST.replace("77", "78")})
    assert "errors" not in biggest.json()
    assert 4 * 1000 * 1000 < len(biggest.content) <= MAX_RESPONSE_BYTES
    assert "over MAX_QUERY_COST" in one_more.text

    baseline = server.rss_bytes()
    peak = baseline
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, server.rss_bytes())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    sockets: list[socket.socket] = []
    try:
        for query in (AMPLIFICATION, BIGGEST):
            sockets += [send_without_reading(server.port, request(query)) for _ in range(CLIENTS)]
        wait_answered(sockets, timeout=60)
        time.sleep(0.5)  # keep sampling while the last responses are handed to the transport
    finally:
        sampling = False
        sampler.join()
        for sock in sockets:
            sock.close()
    growth = peak - baseline
    print(f"RSS {baseline / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, growth {growth / MIB:.0f} MiB")
    assert growth < BOUND, f"RSS grew {growth / MIB:.0f} MiB, over {BOUND / MIB:.0f} MiB"
