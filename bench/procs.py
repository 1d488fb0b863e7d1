"""The bench's client processes: a WebSocket crowd (:mod:`bench.wsclient`) and HTTP load
(:mod:`bench.httpload`), each in a process of its own so that it does not share the
server's core or interpreter."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["Crowd", "http_load"]

ROOT = str(Path(__file__).resolve().parents[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class Crowd:
    """A running :mod:`bench.wsclient` process and its command pipe."""

    def __init__(self, process: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self.process = process
        self.ready = ready

    @classmethod
    async def start(
        cls,
        url: str,
        *,
        sockets: int,
        query: str,
        variables: dict[str, Any] | None = None,
        latency: str | None = None,
        timeout: float = 180.0,
    ) -> Crowd:
        """Open ``sockets`` sockets with one subscription each; returns once all are sent.

        Raises:
            RuntimeError: the process exited or did not get ready in time.
        """
        payload = json.dumps({"query": query, "variables": variables or {}})
        args = ["--url", url, "--sockets", str(sockets), "--payload", payload]
        if latency:
            args += ["--latency", latency]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.wsclient",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=_env(),
            limit=1 << 24,
        )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"{sockets} client sockets not open after {timeout:g} s") from None
        if not line:
            await process.wait()
            raise RuntimeError(f"the client process exited with {process.returncode}")
        return cls(process, json.loads(line))

    async def command(self, text: str, timeout: float = 120.0) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"the client process exited with {self.process.returncode}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def reset(self) -> None:
        await self.command("reset")

    async def wait(self, count: int, seconds: float) -> dict[str, Any]:
        """Statistics once ``count`` ``next`` messages arrived since the reset, or time is up."""
        return await self.command(f"wait {count} {seconds}", timeout=seconds + 30)

    async def close(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(b"quit\n")
                await self.process.stdin.drain()
                await asyncio.wait_for(self.process.wait(), 15)
            except (TimeoutError, ConnectionError):
                self.process.kill()
                await self.process.wait()


async def http_load(
    url: str, *, body: str | None, connections: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """Run :mod:`bench.httpload` against ``url`` and return its figures."""
    args = ["--url", url, "--connections", str(connections)]
    args += ["--seconds", str(seconds), "--warmup", str(warmup)]
    if body is not None:
        args += ["--body", body]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.httpload",
        *args,
        stdout=asyncio.subprocess.PIPE,
        env=_env(),
        limit=1 << 24,
    )
    out, _ = await asyncio.wait_for(process.communicate(), seconds + warmup + 60)
    if process.returncode != 0:
        raise RuntimeError(f"the load generator exited with {process.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result
