"""End-to-end fixtures: the real ``checkin-realtime serve`` process and the Node.js tools.

Each test that asks for ``server`` gets its own server process on a free
loopback port, with a fresh SQLite database under its ``tmp_path``.

Missing tools (``node``, ``tests/e2e/node_modules``, ``chromium``) skip the
test, except when the ``CI`` environment variable is set: there they fail,
since CI must run every test.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

E2E_DIR = Path(__file__).resolve().parent
NODE_MODULES = E2E_DIR / "node_modules"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LOG_TAIL_CHARS = 4000


def require(available: bool, reason: str) -> None:
    """Skip when something the test needs is missing; fail instead when ``CI`` is set."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def node_executable() -> str:
    """The ``node`` binary, with the packages of ``package-lock.json`` installed."""
    node = shutil.which("node")
    require(node is not None, "node (Node.js) is not installed")
    assert node is not None
    packages = json.loads((E2E_DIR / "package.json").read_text())["dependencies"]
    missing = [name for name in packages if not (NODE_MODULES / name / "package.json").is_file()]
    require(
        not missing,
        f"{NODE_MODULES} lacks {', '.join(missing)}: run `make e2e-deps` (npm ci in tests/e2e)",
    )
    return node


def chromium_executable() -> str:
    """Debian's Chromium (``apt-get install chromium``); no browser is downloaded."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    require(found is not None, "chromium is not installed (apt-get install chromium)")
    assert found is not None
    return found


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


def start_server(directory: Path, *, attempts: int = 3) -> Server:
    """Start ``checkin-realtime serve`` on a free port with a new database in ``directory``."""
    database_url = f"sqlite+aiosqlite:///{directory / 'checkin.db'}"
    env = {**os.environ, "DATABASE_URL": database_url}
    # Settings the developer's shell may carry must not leak into the test.
    for name in ("REALTIME_URL", "BROADCAST_URL", "GRAPHIQL", "ALLOWED_ORIGINS"):
        env.pop(name, None)
    failures = []
    for attempt in range(1, attempts + 1):
        port = _free_port()
        log_path = directory / f"server-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*_serve_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=directory,
            )
        server = Server(process, port, database_url, log_path)
        problem = _wait_healthy(server, time.monotonic() + START_TIMEOUT)
        if problem is None:
            return server
        server.stop()
        failures.append(f"attempt {attempt} on port {port}: {problem}\n{server.log_tail()}")
        # Another process may have taken the port between probe and bind: try another.
    pytest.fail("checkin-realtime serve did not start:\n" + "\n".join(failures))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real server process, stopped at teardown; its exit must be clean."""
    running = start_server(tmp_path)
    try:
        yield running
    finally:
        code = running.stop()
    # After a graceful shutdown uvicorn re-raises the SIGTERM it caught, so the exit
    # status is -SIGTERM (0 with older versions); -SIGKILL means it had to be killed.
    log = running.log_tail()
    assert code in (0, -signal.SIGTERM), f"server exited with {code} at shutdown:\n{log}"
    assert "Application shutdown complete" in log, f"no graceful shutdown:\n{log}"


@pytest.fixture
def node() -> str:
    return node_executable()


@pytest.fixture
def chromium() -> str:
    return chromium_executable()


class NodeScript:
    """A Node.js script running as a child process that prints JSON lines on stdout."""

    def __init__(self, process: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.process = process
        self.stderr_path = stderr_path
        self.lines: list[str] = []

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError as exc:
            return f"<no stderr: {exc}>"

    def describe(self) -> str:
        """What the script printed so far, for failure messages."""
        stdout = "".join(self.lines)[-LOG_TAIL_CHARS:]
        return f"exit code: {self.process.returncode}\nstdout:\n{stdout}\nstderr:\n{self.stderr()}"

    async def message(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON line, or None at the end of stdout."""
        assert self.process.stdout is not None
        try:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            pytest.fail(f"no output from the node script within {timeout}s\n{self.describe()}")
        if not raw:
            return None
        line = raw.decode()
        self.lines.append(line)
        try:
            decoded: dict[str, Any] = json.loads(line)
        except ValueError:
            pytest.fail(f"node script printed a line that is not JSON: {line!r}")
        return decoded

    async def wait(self, timeout: float) -> int:
        """Wait for the exit; returns the exit code."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            pytest.fail(f"node script still running after {timeout}s\n{self.describe()}")


@asynccontextmanager
async def run_node(node: str, script: str, *args: str, log_dir: Path) -> AsyncIterator[NodeScript]:
    """Run ``tests/e2e/<script>``; killed on exit from the block if still running."""
    stderr_path = log_dir / f"{Path(script).stem}.stderr.log"
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            node,
            str(E2E_DIR / script),
            *args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=E2E_DIR,
        )
    try:
        yield NodeScript(process, stderr_path)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
