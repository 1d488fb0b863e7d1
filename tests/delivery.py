"""Delivery checker: subscribe as real clients and count lost, duplicated and reordered events.

Usable from tests and against any deployment::

    python -m tests.delivery --url http://127.0.0.1:8000/graphql --user u1 --user u2 --seconds 30

Each subscriber follows ``activityAdded(userId, after)`` over graphql-transport-ws
(PROTOCOL.md of graphql-ws). When its subscription ends with a resumable error
(``SUBSCRIBER_OVERFLOW``, ``BROKER_DISCONNECTED``) or its socket drops, it
reconnects (to the next URL, when several are given) and resumes with the last
``seq`` it received, as a real dashboard should. Afterwards the expected
sequence numbers are read back over HTTP from ``recentActivities``, and the
report says, per user, which were never received, which arrived twice, and how
many arrived out of order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gql.codes import RESUMABLE

__all__ = ["DeliveryChecker", "Report", "UserReport"]

SUBSCRIPTION = """subscription($u: String!, $after: Int) {
  activityAdded(userId: $u, after: $after) { seq }
}"""
RECENT = """query($u: String!, $after: String) {
  recentActivities(userId: $u, first: 100, after: $after) {
    edges { node { seq } } pageInfo { hasNextPage endCursor }
  }
}"""


@dataclass
class UserReport:
    """What one subscriber saw, against what the database holds."""

    user_id: str
    received: list[int] = field(default_factory=list)
    expected: list[int] = field(default_factory=list)
    reconnects: int = 0

    @property
    def lost(self) -> list[int]:
        return sorted(set(self.expected) - set(self.received))

    @property
    def duplicated(self) -> int:
        return len(self.received) - len(set(self.received))

    @property
    def out_of_order(self) -> int:
        return sum(1 for a, b in zip(self.received, self.received[1:], strict=False) if b <= a)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicated and not self.out_of_order


@dataclass
class Report:
    users: list[UserReport]

    @property
    def lost(self) -> int:
        return sum(len(u.lost) for u in self.users)

    @property
    def duplicated(self) -> int:
        return sum(u.duplicated for u in self.users)

    @property
    def out_of_order(self) -> int:
        return sum(u.out_of_order for u in self.users)

    @property
    def ok(self) -> bool:
        return all(u.ok for u in self.users)

    def summary(self) -> str:
        received = sum(len(u.received) for u in self.users)
        reconnects = sum(u.reconnects for u in self.users)
        return (
            f"users={len(self.users)} received={received} lost={self.lost} "
            f"duplicated={self.duplicated} out_of_order={self.out_of_order} "
            f"reconnects={reconnects}"
        )


def _ws_url(url: str) -> str:
    return "ws" + url[len("http") :] if url.startswith("http") else url


class DeliveryChecker:
    """Follows ``activityAdded`` for each user until :meth:`stop`, resuming after faults.

    Args:
        urls: GraphQL endpoints (``http://host:port/graphql``); a subscriber that
            loses its socket moves on to the next one.
        users: the user ids to follow.
        after: start each subscription after this seq (0 for the beginning).
        connection_params: the ``connection_init`` payload (e.g. an authorization).
        headers: HTTP headers for the read-back queries.
    """

    def __init__(
        self,
        urls: Sequence[str],
        users: Sequence[str],
        *,
        after: int = 0,
        connection_params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.urls = list(urls)
        self.reports = {user: UserReport(user) for user in users}
        self.after = after
        self.connection_params = connection_params or {}
        self.headers = headers or {}
        self._ready: dict[str, asyncio.Event] = {user: asyncio.Event() for user in users}
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, timeout: float = 10.0) -> None:
        """Open every subscription and wait until each has delivered its first event.

        graphql-transport-ws has no acknowledgement of ``subscribe``; a
        replayed event proves the server-side subscription is live (replay
        runs after the broker subscription). So each user needs at least one
        activity after ``after`` before this is called.
        """
        self._tasks = [asyncio.create_task(self._follow(user)) for user in self.reports]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._ready.values())), timeout)

    async def wait_for(self, counts: dict[str, int], timeout: float) -> None:
        """Wait until each user has received at least ``counts[user]`` distinct events."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(len(set(self.reports[u].received)) >= n for u, n in counts.items()):
                return
            await asyncio.sleep(0.05)

    async def stop(self) -> Report:
        """Close the subscriptions, read the expected seqs back, and report."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with httpx.AsyncClient(headers=self.headers, timeout=30) as http:
            url = await self._live_url(http)
            for report in self.reports.values():
                report.expected = await self._expected(http, url, report.user_id)
        return Report(list(self.reports.values()))

    async def _live_url(self, http: httpx.AsyncClient) -> str:
        """The first URL that answers (an instance may have died during the run)."""
        for url in self.urls:
            try:
                await http.post(url, json={"query": "{ __typename }"})
            except httpx.TransportError:
                continue
            return url
        raise RuntimeError(f"none of {self.urls} answers")

    async def _expected(self, http: httpx.AsyncClient, url: str, user_id: str) -> list[int]:
        seqs: list[int] = []
        cursor = None
        while True:
            response = await http.post(
                url, json={"query": RECENT, "variables": {"u": user_id, "after": cursor}}
            )
            page = response.json()["data"]["recentActivities"]
            seqs += [e["node"]["seq"] for e in page["edges"] if e["node"]["seq"] > self.after]
            if not page["pageInfo"]["hasNextPage"]:
                return sorted(seqs)
            cursor = page["pageInfo"]["endCursor"]

    async def _follow(self, user: str) -> None:
        report = self.reports[user]
        attempt = 0
        while not self._stopping.is_set():
            url = self.urls[attempt % len(self.urls)]
            try:
                await self._session(url, user, report)
            except (OSError, ConnectionClosed, TimeoutError, asyncio.IncompleteReadError):
                pass
            if self._stopping.is_set():
                return
            attempt += 1
            report.reconnects += 1
            await asyncio.sleep(min(0.1 * attempt, 1.0))

    async def _session(self, url: str, user: str, report: UserReport) -> None:
        async with connect(
            _ws_url(url), subprotocols=["graphql-transport-ws"], open_timeout=5, max_size=2**22
        ) as ws:  # type: ignore[arg-type]
            await ws.send(
                json.dumps({"type": "connection_init", "payload": self.connection_params})
            )
            while True:
                ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if ack["type"] == "connection_ack":
                    break
            after = report.received[-1] if report.received else self.after
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {
                            "query": SUBSCRIPTION,
                            "variables": {"u": user, "after": after},
                        },
                    }
                )
            )
            async for raw in ws:
                message = json.loads(raw)
                kind = message["type"]
                if kind == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                elif kind == "next":
                    payload = message["payload"]
                    if payload.get("errors"):
                        code = payload["errors"][0].get("extensions", {}).get("code")
                        if code in RESUMABLE:
                            return
                        raise RuntimeError(f"subscription of {user!r} failed: {payload['errors']}")
                    report.received.append(payload["data"]["activityAdded"]["seq"])
                    self._ready[user].set()
                elif kind == "error":
                    raise RuntimeError(f"subscription of {user!r} failed: {message['payload']}")
                elif kind == "complete":
                    return


async def _main(args: argparse.Namespace) -> int:
    checker = DeliveryChecker(args.url, args.user, after=args.after)
    try:
        await checker.start()
    except TimeoutError:
        print("not every user has an activity after --after; counting from now on", flush=True)
    print(f"following {len(args.user)} users for {args.seconds} s", flush=True)
    await asyncio.sleep(args.seconds)
    report = await checker.stop()
    for user in report.users:
        print(
            f"{user.user_id}: received={len(user.received)} lost={len(user.lost)} "
            f"duplicated={user.duplicated} out_of_order={user.out_of_order} "
            f"reconnects={user.reconnects}"
        )
    print(report.summary())
    return 0 if report.ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True, help="GraphQL URL (repeatable)")
    parser.add_argument("--user", action="append", required=True, help="user id (repeatable)")
    parser.add_argument("--after", type=int, default=0, help="start after this seq")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to follow")
    raise SystemExit(asyncio.run(_main(parser.parse_args())))


if __name__ == "__main__":
    main()
