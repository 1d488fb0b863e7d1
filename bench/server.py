"""One real ``checkin-realtime serve`` process for a benchmark, and its resident memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["Serve", "start_reference", "start_serve"]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Settings a developer's shell may carry; the benchmark chooses its own.
CLEARED = (
    "DATABASE_URL",
    "REALTIME_URL",
    "BROADCAST_URL",
    "ENV",
    "JWT_SECRET",
    "JWT_JWKS_URL",
    "SERVICE_API_KEYS",
    "SUBSCRIBER_QUEUE",
    "WRITE_WAIT",
    "STORE_WINDOW",
    "STORE_MAX_BYTES",
)


@dataclass
class Serve:
    """A running ``checkin-realtime serve`` on a loopback port."""

    process: subprocess.Popen[bytes]
    port: int
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

    def rss_bytes(self) -> int:
        """Resident set size now (VmRSS in /proc/PID/status; Linux only)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for process {self.process.pid}")

    def cpu_seconds(self) -> float:
        """User and system CPU time used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL: once a figure is measured, a graceful close of thousands of sockets is waste."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command() -> list[str]:
    script = Path(sys.executable).parent / "checkin-realtime"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "gql.cli"]


def _wait_healthy(serve: Serve, path: str = "/healthz") -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            if serve.process.poll() is not None:
                break
            try:
                if http.get(f"{serve.base_url}{path}").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            # The process gives no readiness signal but its port.
            time.sleep(0.1)
    serve.stop()
    raise RuntimeError(f"{serve.log_path.stem} did not start:\n{serve.log_tail()}")


def start_serve(
    directory: Path, settings: Mapping[str, str], *, name: str = "serve", log_level: str = "info"
) -> Serve:
    """Start ``serve`` in dev mode with a new SQLite database in ``directory``.

    Args:
        directory: working directory; holds the database and ``serve.log``.
        settings: environment variables on top of the cleared developer settings.
        name: the log file's name, ``NAME.log``.
        log_level: ``serve --log-level``; below ``info`` there is no access log.

    Raises:
        RuntimeError: it did not answer ``/healthz`` within 30 s.
    """
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{directory / 'checkin.db'}"
    env.update(settings)
    port = _free_port()
    log_path = directory / f"{name}.log"
    command = [*_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--log-level", log_level],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
        )
    serve = Serve(process, port, log_path)
    _wait_healthy(serve)
    return serve


def start_reference(directory: Path, database_url: str, *, name: str = "reference") -> Serve:
    """Start the raw Starlette reference (:mod:`bench.reference`) reading ``database_url``.

    Raises:
        RuntimeError: it did not answer ``/ping`` within 30 s.
    """
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["BENCH_DATABASE_URL"] = database_url
    # The directory holding the bench package, wherever the bench runs from.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    port = _free_port()
    log_path = directory / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.reference", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
        )
    serve = Serve(process, port, log_path)
    _wait_healthy(serve, "/ping")
    return serve
