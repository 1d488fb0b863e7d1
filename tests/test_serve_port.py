"""A busy port stops ``serve`` (and ``make serve``) before anything is installed or migrated."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import require_service

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_serve_refuses_a_busy_port_before_migrating(tmp_path: Path, busy_port: int) -> None:
    database = tmp_path / "checkin.db"
    result = subprocess.run(
        [sys.executable, "-m", "gql.cli", "serve", "--port", str(busy_port)],
        env={"DATABASE_URL": f"sqlite+aiosqlite:///{database}", "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"make serve PORT={busy_port + 1}" in result.stderr
    assert not database.exists(), "migrated before checking the port"


def test_make_serve_checks_the_port_first(busy_port: int) -> None:
    make = shutil.which("make")
    require_service(make is not None, "make is not installed")
    assert make is not None
    result = subprocess.run(
        [make, "--no-print-directory", "port-free", f"PORT={busy_port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"choose another: make serve PORT={busy_port + 1}" in result.stderr
    # The check comes before the install step in `serve`'s prerequisites.
    plan = subprocess.run(
        [make, "-n", "--no-print-directory", "serve", f"PORT={busy_port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert plan.index("connect_ex") < plan.index("checkin-realtime serve")
    if "pip install" in plan:
        assert plan.index("connect_ex") < plan.index("pip install")
