"""A client stalled mid-request does not keep the server from shutting down."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from tests.servers import start_server


def test_sigterm_exits_within_the_grace_period_despite_a_stalled_request(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    stalled = socket.create_connection(("127.0.0.1", server.port))
    try:
        stalled.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"qu'
        )
        time.sleep(0.5)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        stalled.close()
        server.stop()
    assert elapsed < 15, f"shutdown took {elapsed:.1f} s"
