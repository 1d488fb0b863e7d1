"""Services a fault test owns and breaks: a private ``redis-server``, PostgreSQL connections.

The shared Redis on 6379 serves other test runs at the same time, so a test
that stops or restarts Redis starts one of its own with :class:`RedisProcess`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest
from redis import Redis

from tests.conftest import postgres_url_for, require_service

__all__ = ["RedisProcess", "terminate_backends"]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A ``redis-server`` of this test's own on a free loopback port, without persistence.

    :meth:`stop` then :meth:`start` is a restart on the same port that loses
    every key and every client connection, as a real Redis restart without
    persistence does. :meth:`pause` (SIGSTOP) leaves connections open but
    unanswered, as a frozen or partitioned Redis does.
    """

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        require_service(binary is not None, "redis-server is not installed")
        assert binary is not None
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, prefix: str = "") -> str:
        query = f"?prefix={prefix}" if prefix else ""
        return f"redis://127.0.0.1:{self.port}/0{query}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start (or restart) on :attr:`port` and wait until it answers ``PING``."""
        assert not self.running
        self.starts += 1
        log = self.directory / f"redis-{self.port}-{self.starts}.log"
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(log),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        with Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5) as client:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"redis-server exited: {log.read_text(errors='replace')[-2000:]}")
                try:
                    if client.ping():
                        return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                # Nothing to await: redis-server gives no readiness signal but its port.
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGKILL and wait: Redis is gone at once, with every key and connection."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)


async def terminate_backends(database_url: str, *, application_name: str) -> list[int]:
    """``pg_terminate_backend`` every connection to ``database_url``'s database named so.

    Returns the process ids terminated.
    """
    database = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    conn = await asyncpg.connect(postgres_url_for("postgres", "postgresql"), timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT pid, pg_terminate_backend(pid) AS done FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()",
            database,
            application_name,
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows if row["done"]]
