"""M1: resident memory per idle subscription, one subscription per socket, every one still live.

Starts one real ``checkin-realtime serve`` (dev mode, SQLite, memory store and
broker) and opens ``--warm`` sockets with one subscription each, which each get
one event (so that every code path of a delivery is loaded and warm). The
server's RSS then is the baseline. It then opens ``N`` more sockets, one
graphql-transport-ws subscription each, to ``--users`` users, without
per-message deflate unless ``--deflate``; once the server's hub counts them
all, RSS again. The figure is the difference divided by ``N``. Last, one event
is written to each user, and every subscription must receive it: held memory
that no longer delivers would not count.

    python -m bench.idle_memory [-n 10000] [--users N] [--deflate] [--env NAME=VALUE]

Prints KiB per idle subscription and whether every subscription got its event;
exits 1 when one did not. :func:`measure_idle_memory` is the same run as a
function, for a larger benchmark suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from .server import Serve, start_serve

__all__ = ["IdleMemoryResult", "measure_idle_memory", "open_idle_sockets", "raise_fd_limit"]

KIB = 1024
MIB = 1024 * 1024
TARGET_KIB = 32
# Caps the run lifts: it measures memory, not admission.
UNCAPPED = {
    "MAX_SUBSCRIPTIONS_PER_USER": "0",
    "MAX_SUBSCRIPTIONS_PER_SERVICE": "0",
    "MAX_SOCKETS_PER_USER": "0",
    "MAX_SOCKETS_PER_SERVICE": "0",
    "MAX_PENDING_SOCKETS_PER_ADDRESS": "0",
    "MAX_CONNECTIONS": "0",
    # The check writes one event per user; a mutation need not wait for its relay.
    "WRITE_WAIT": "0",
    # Thousands of handshakes queue up on a busy machine; none may time out.
    "CONNECTION_INIT_TIMEOUT": "120",
}
SUBSCRIPTION = "subscription($u: String!) { activityAdded(userId: $u) { seq } }"
ADD = 'mutation($u: String!) { addActivity(input: {userId: $u, type: "note"}) { seq } }'
# Sockets spread over loopback addresses 127.0.0.2 and up, as bench/load.py does.
SOURCE_ADDRESSES = 200
HANDSHAKES_AT_ONCE = 32
WRITES_AT_ONCE = 64
SUBSCRIBED_TIMEOUT = 300.0
DELIVERY_TIMEOUT = 120.0
# Seconds for the server to settle (its allocator and background tasks) before RSS is read.
SETTLE = 2.0


@dataclass
class IdleMemoryResult:
    """One run: RSS before and after ``subscriptions`` idle subscriptions, and their delivery."""

    subscriptions: int
    users: int
    deflate: bool
    rss_before: int
    rss_after: int
    delivered: int = 0
    seconds: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def kib_per_subscription(self) -> float:
        return (self.rss_after - self.rss_before) / self.subscriptions / KIB

    @property
    def all_delivered(self) -> bool:
        return self.delivered == self.subscriptions

    def to_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "kib_per_subscription": round(self.kib_per_subscription, 2),
            "target_kib": TARGET_KIB,
        }


def raise_fd_limit(sockets: int) -> None:
    """Lift this process's soft descriptor limit (a ``serve`` started from it inherits it).

    The clients run here and the server's ends in its own process: each needs
    ``sockets`` descriptors and some.

    Raises:
        SystemExit: the hard limit is too low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets + 512
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"the descriptor limit is {hard}; {needed} needed (ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _open(
    url: str, index: int, user: str, *, deflate: bool, subscribe: bool
) -> ClientConnection:
    ws = await connect(
        url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        compression="deflate" if deflate else None,
        # The server pings; client pings would only add work.
        ping_interval=None,
        open_timeout=120,
        local_addr=(f"127.0.0.{2 + index % SOURCE_ADDRESSES}", 0),
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    reply = json.loads(await ws.recv())
    if reply.get("type") != "connection_ack":
        await ws.close()
        raise RuntimeError(f"connection_init answered with {reply}")
    if not subscribe:
        return ws
    payload = {"query": SUBSCRIPTION, "variables": {"u": user}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def open_idle_sockets(
    url: str,
    users: list[str],
    *,
    deflate: bool = False,
    first_index: int = 0,
    subscribe: bool = True,
) -> list[ClientConnection]:
    """One socket per entry of ``users``, each past ``connection_ack`` with one subscription.

    With ``subscribe=False`` the sockets stay bare (for the cost of a socket alone).
    """
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)

    async def one(index: int, user: str) -> ClientConnection:
        async with gate:
            return await _open(url, first_index + index, user, deflate=deflate, subscribe=subscribe)

    return list(await asyncio.gather(*(one(i, user) for i, user in enumerate(users))))


async def _subscribers(http: httpx.AsyncClient, serve: Serve) -> float:
    text = (await http.get(f"{serve.base_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("checkin_broadcast_subscribers "):
            return float(line.split()[1])
    return -1.0


async def _wait_subscribed(http: httpx.AsyncClient, serve: Serve, expected: int) -> None:
    deadline = time.monotonic() + SUBSCRIBED_TIMEOUT
    seen = -1.0
    while time.monotonic() < deadline:
        seen = await _subscribers(http, serve)
        if seen >= expected:
            return
        # No event says "all subscribed"; the gauge is polled.
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{seen:.0f} of {expected} subscriptions reached the server's hub")


async def _write(http: httpx.AsyncClient, serve: Serve, users: list[str]) -> None:
    gate = asyncio.Semaphore(WRITES_AT_ONCE)

    async def one(user: str) -> None:
        async with gate:
            response = await http.post(
                serve.graphql_url, json={"query": ADD, "variables": {"u": user}}
            )
            body = response.json()
            if "errors" in body:
                raise RuntimeError(f"addActivity for {user} failed: {body['errors']}")

    await asyncio.gather(*(one(user) for user in users))


async def _received(sockets: list[ClientConnection], timeout: float) -> int:
    """How many sockets got a ``next`` message within ``timeout`` seconds (pings are skipped)."""
    deadline = time.monotonic() + timeout

    async def one(ws: ClientConnection) -> bool:
        with contextlib.suppress(Exception):
            while (remaining := deadline - time.monotonic()) > 0:
                message = json.loads(await asyncio.wait_for(ws.recv(), remaining))
                if message.get("type") == "next" and message.get("id") == "1":
                    return True
                if message.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
        return False

    return sum(await asyncio.gather(*(one(ws) for ws in sockets)))


async def measure_idle_memory(
    subscriptions: int = 10_000,
    *,
    users: int | None = None,
    deflate: bool = False,
    warm: int = 100,
    settings: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> IdleMemoryResult:
    """RSS per idle subscription of one ``serve``, one subscription per socket.

    Args:
        subscriptions: idle sockets (one subscription each) to measure.
        users: distinct users they subscribe to (default: one each).
        deflate: offer per-message deflate from the clients.
        warm: sockets opened, subscribed and sent one event before the baseline.
        settings: the server's environment on top of the bench's.
        directory: where the server's database and log go (default: a temporary one).
    """
    if directory is None:
        with tempfile.TemporaryDirectory() as tmp:
            return await measure_idle_memory(
                subscriptions,
                users=users,
                deflate=deflate,
                warm=warm,
                settings=settings,
                directory=Path(tmp),
            )
    raise_fd_limit(subscriptions + warm)
    started = time.monotonic()
    count = users or subscriptions
    names = [f"idle-{i % count}" for i in range(subscriptions)]
    warm_names = [f"warm-{i}" for i in range(warm)]
    server_settings = {**UNCAPPED, **(settings or {})}
    serve = start_serve(directory, server_settings)
    sockets: list[ClientConnection] = []
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            sockets = await open_idle_sockets(serve.ws_url, warm_names, deflate=deflate)
            await _wait_subscribed(http, serve, warm)
            await _write(http, serve, warm_names)
            if (got := await _received(sockets, DELIVERY_TIMEOUT)) != warm:
                raise RuntimeError(f"only {got} of {warm} warm-up subscriptions got their event")
            await asyncio.sleep(SETTLE)
            before = serve.rss_bytes()
            idle = await open_idle_sockets(serve.ws_url, names, deflate=deflate, first_index=warm)
            sockets.extend(idle)
            await _wait_subscribed(http, serve, warm + subscriptions)
            await asyncio.sleep(SETTLE)
            after = serve.rss_bytes()
            await _write(http, serve, sorted(set(names)))
            delivered = await _received(idle, DELIVERY_TIMEOUT)
        return IdleMemoryResult(
            subscriptions=subscriptions,
            users=count,
            deflate=deflate,
            rss_before=before,
            rss_after=after,
            delivered=delivered,
            seconds=round(time.monotonic() - started, 1),
            settings=dict(settings or {}),
        )
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        serve.stop()


def report(result: IdleMemoryResult) -> list[str]:
    """The figure and the verdict, as lines of text."""
    ok = result.kib_per_subscription <= TARGET_KIB and result.all_delivered
    return [
        f"M1: {result.subscriptions} idle subscriptions (one per socket, to {result.users} "
        f"users, deflate {'offered' if result.deflate else 'off'}"
        + (f", {result.settings}" if result.settings else "")
        + ")",
        f"  RSS {result.rss_before / MIB:.1f} -> {result.rss_after / MIB:.1f} MiB: "
        f"{result.kib_per_subscription:.1f} KiB per subscription (target <= {TARGET_KIB})",
        f"  delivery: {result.delivered}/{result.subscriptions} got their event "
        f"(run took {result.seconds:g} s)",
        "PASS" if ok else "FAIL",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--subscriptions", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=None, help="distinct users (default: n)")
    parser.add_argument("--deflate", action="store_true", help="clients offer deflate")
    parser.add_argument("--warm", type=int, default=100, help="sockets before the baseline")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="a server setting"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(
        measure_idle_memory(
            args.subscriptions,
            users=args.users,
            deflate=args.deflate,
            warm=args.warm,
            settings=dict(item.split("=", 1) for item in args.env),
        )
    )
    print("\n".join(report(result)))
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return 0 if result.all_delivered else 1


if __name__ == "__main__":
    sys.exit(main())
