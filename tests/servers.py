"""Real ``checkin-realtime serve`` processes for end-to-end and fault tests.

:func:`start_server` runs the installed console script on a free loopback
port with the given settings as environment variables, and waits for
``/healthz``. Tests stop it with :meth:`Server.stop` (SIGTERM) or
:meth:`Server.kill` (SIGKILL, a crash).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LOG_TAIL_CHARS = 4000
# Settings a developer's shell may carry must not leak into a test's server.
SETTING_NAMES = (
    "DATABASE_URL",
    "REALTIME_URL",
    "BROADCAST_URL",
    "GRAPHIQL",
    "ALLOWED_ORIGINS",
    "SUBSCRIBER_QUEUE",
    "WRITE_WAIT",
    "ESCALATION_POLICY",
    "APQ_CACHE_SIZE",
    "PERSISTED_QUERIES_MANIFEST",
    "DASHBOARD_PAGE",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m gql.cli``."""
    script = Path(sys.executable).parent / "checkin-realtime"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "gql.cli"]


@dataclass
class Server:
    """A running ``checkin-realtime serve``."""

    process: subprocess.Popen[bytes]
    port: int
    database_url: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def log_tail(self) -> str:
        """The end of the server's combined stdout and stderr, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no server log: {exc}>"
        return text[-LOG_TAIL_CHARS:]

    async def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, timeout: float = 10.0
    ) -> dict[str, Any]:
        """POST an operation over HTTP; returns ``data``, failing the test on any error."""
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.post(
                self.graphql_url, json={"query": query, "variables": variables or {}}
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident set size of the process now, from /proc (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def kill(self) -> None:
        """SIGKILL: a crash, with no shutdown at all."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> int:
        """Terminate (SIGTERM), wait, kill on timeout; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode


def _wait_healthy(server: Server, deadline: float) -> str | None:
    """Poll /healthz until it answers 200; returns why it did not, or None."""
    last_error = "no attempt"
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            code = server.process.poll()
            if code is not None:
                return f"server exited with code {code}"
            try:
                response = http.get(f"{server.base_url}/healthz")
            except httpx.TransportError as exc:
                last_error = repr(exc)
            else:
                if response.status_code == 200 and response.json() == {"status": "ok"}:
                    return None
                last_error = f"/healthz answered {response.status_code}: {response.text}"
            # Nothing to await: the process gives no readiness signal but its port.
            time.sleep(0.05)
    return f"/healthz not ready after {START_TIMEOUT}s: {last_error}"


def start_server(
    directory: Path,
    *,
    settings: Mapping[str, str] | None = None,
    attempts: int = 3,
    name: str = "server",
    port: int | None = None,
    args: Sequence[str] = (),
) -> Server:
    """Start ``checkin-realtime serve`` on a free port.

    Args:
        directory: working directory and log location; the default database
            is a new SQLite file in it.
        settings: environment variables (``DATABASE_URL``, ``BROADCAST_URL``, ...)
            on top of the defaults.
        port: the port to serve on (e.g. a restart's, for clients that reconnect);
            default: a free one, another on each attempt.
        args: more arguments of ``serve`` (``--workers 2``).
    """
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{directory / 'checkin.db'}"
    env.update(settings or {})
    database_url = env["DATABASE_URL"]
    failures = []
    for attempt in range(1, attempts + 1):
        serve_port = port or _free_port()
        log_path = directory / f"{name}-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    *_serve_command(),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(serve_port),
                    *args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=directory,
            )
        server = Server(process, serve_port, database_url, log_path)
        problem = _wait_healthy(server, time.monotonic() + START_TIMEOUT)
        if problem is None:
            return server
        server.stop()
        failures.append(f"attempt {attempt} on port {serve_port}: {problem}\n{server.log_tail()}")
        # Another process may have taken the port between probe and bind: try another.
    pytest.fail("checkin-realtime serve did not start:\n" + "\n".join(failures))
