"""A private PostgreSQL cluster a test may stop and start: never the machine's own.

Built with the server's ``initdb`` and ``pg_ctl`` in a fresh directory, on a
free loopback port, with trust authentication. PostgreSQL refuses to run as
root, so as root the tools run as the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PrivateCluster", "postgres_bin"]

_TOOL_TIMEOUT = 60


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``pg_ctl``, or ``None``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateCluster:
    """A throw-away cluster: :meth:`init`, then :meth:`start` / :meth:`stop` at will.

    Args:
        bin_dir: where ``initdb`` and ``pg_ctl`` are (see :func:`postgres_bin`).
    """

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="checkin-pg-"))
        self._data = self.directory / "data"
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        """The ``postgresql+asyncpg://`` URL of its ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        """Create the cluster (``initdb``)."""
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "-E", "UTF8")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self._data),
            "-l",
            str(self.directory / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions and disconnect everyone)."""
        self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs, and delete the cluster."""
        subprocess.run(
            [
                *self._prefix(),
                str(self._bin / "pg_ctl"),
                "-D",
                str(self._data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
            timeout=_TOOL_TIMEOUT,
        )
        shutil.rmtree(self.directory, ignore_errors=True)

    def _prefix(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if self._as_postgres else []

    def _run(self, tool: str, *args: str) -> None:
        completed = subprocess.run(
            [*self._prefix(), str(self._bin / tool), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=_TOOL_TIMEOUT,
            cwd=self.directory,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{tool} failed: {completed.stdout}{completed.stderr}")
