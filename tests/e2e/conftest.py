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
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service as require
from tests.servers import LOG_TAIL_CHARS, Server, start_server

E2E_DIR = Path(__file__).resolve().parent
NODE_MODULES = E2E_DIR / "node_modules"


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
