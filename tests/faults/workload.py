"""The write load of the fault tests, and the check that the store converged on the database.

:class:`Workload` sends ``addActivity`` mutations for several users over HTTP,
one writer per user (so each user's writes are in order), optionally paced,
and records every returned ``seq``, every failure and every latency. A test
breaks a service while it runs (:meth:`Workload.reached` says when) and
afterwards checks that every mutation that returned success was delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from db import create_engine, create_session_factory, snapshots
from sync import create_store
from sync.stores.state import from_snapshot
from tests.delivery import DeliveryChecker

__all__ = [
    "Workload",
    "last_seqs",
    "store_differences",
    "wait_delivered",
    "wait_store_converged",
]

ADD = """mutation($u: String!, $d: String!) {
  addActivity(input: {userId: $u, type: "note", description: $d, metadata: {n: 1}}) { seq }
}"""


@dataclass
class Workload:
    """``per_user`` activities for each of ``users``, sent to ``urls``.

    Args:
        urls: GraphQL endpoints; the writers of successive users start on
            successive URLs. A writer whose request fails at the transport
            level moves on to the next one when ``failover`` is set.
        rate: mutations per second over all writers (``None``: as fast as
            the server answers).
        failover: tolerate a dead endpoint: retry the same write on the next
            URL after a transport error (the write may or may not have
            committed; only writes that returned success are recorded).
    """

    urls: Sequence[str]
    users: Sequence[str]
    per_user: int
    rate: float | None = None
    failover: bool = False
    written: dict[str, list[int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    transport_errors: int = 0
    done: int = 0
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    def __post_init__(self) -> None:
        self.written = {user: [] for user in self.users}

    @property
    def total(self) -> int:
        return len(self.users) * self.per_user

    async def run(self, *, first: int = 0, count: int | None = None) -> None:
        """Send writes ``first`` up to ``first + count`` (default: the rest) of every user."""
        last = self.per_user if count is None else first + count
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as http:
            await asyncio.gather(
                *(
                    self._writer(http, user, first, last, started, url_index=n)
                    for n, user in enumerate(self.users)
                )
            )

    async def reached(self, done: int) -> None:
        """Wait until ``done`` writes have returned."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.done >= done)

    async def _writer(
        self,
        http: httpx.AsyncClient,
        user: str,
        first: int,
        last: int,
        started: float,
        *,
        url_index: int,
    ) -> None:
        per_writer = None if self.rate is None else self.rate / len(self.users)
        for i in range(first, last):
            if per_writer is not None:
                due = started + (i - first) / per_writer
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            while True:
                url = self.urls[url_index % len(self.urls)]
                sent = time.monotonic()
                try:
                    body = await self._post(http, url, user, f"{user} #{i}")
                except httpx.TransportError as exc:
                    self.transport_errors += 1
                    if not self.failover:
                        self.errors.append(f"{user} #{i}: {exc!r}")
                        break
                    url_index += 1
                    continue
                self.latencies.append((sent, time.monotonic() - sent))
                if body.get("errors"):
                    self.errors.append(f"{user} #{i}: {body['errors']}")
                else:
                    self.written[user].append(body["data"]["addActivity"]["seq"])
                break
            async with self._progress:
                self.done += 1
                self._progress.notify_all()

    async def _post(self, http: httpx.AsyncClient, url: str, user: str, text: str) -> Any:
        response = await http.post(url, json={"query": ADD, "variables": {"u": user, "d": text}})
        if response.status_code != 200:
            return {"errors": [f"HTTP {response.status_code}: {response.text[:500]}"]}
        return response.json()

    def latency_between(self, start: float, end: float) -> list[float]:
        """Latencies (s) of the writes sent in ``[start, end)`` (``time.monotonic()``)."""
        return [latency for sent, latency in self.latencies if start <= sent < end]


async def store_differences(
    database_url: str, realtime_url: str, users: Sequence[str], *, window: int = 100
) -> list[str]:
    """Field by field, where the store's state of each user differs from a database snapshot.

    Returns one line per differing field; empty when the store equals the database.
    """
    store = create_store(realtime_url, window=window)
    assert store is not None
    engine = create_engine(database_url)
    differences: list[str] = []
    try:
        sessions = create_session_factory(engine)
        async with store:
            for user in users:
                async with sessions() as session:
                    snapshot = await snapshots.load(session, user_id=user, limit=window)
                expected = from_snapshot(snapshot).to_json()
                state = await store.get(user)
                if state is None:
                    differences.append(f"{user}: not in the store (database seq {snapshot.seq})")
                    continue
                actual = state.to_json()
                for name, value in expected.items():
                    if actual.get(name) != value:
                        differences.append(
                            f"{user}.{name}: store {_short(actual.get(name))}"
                            f" != database {_short(value)}"
                        )
    finally:
        await engine.dispose()
    return differences


async def wait_store_converged(
    database_url: str, realtime_url: str, users: Sequence[str], *, timeout: float
) -> tuple[float, list[str]]:
    """Poll :func:`store_differences` until there are none; return (seconds waited, last diff)."""
    started = time.monotonic()
    while True:
        differences = await store_differences(database_url, realtime_url, users)
        waited = time.monotonic() - started
        if not differences or waited > timeout:
            return waited, differences
        await asyncio.sleep(0.2)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


async def wait_delivered(
    checker: DeliveryChecker, seqs: dict[str, list[int]], *, timeout: float
) -> float:
    """Wait until the checker has received every one of ``seqs``; return the seconds waited.

    Returns ``timeout`` (or a little more) when some never arrived.
    """
    started = time.monotonic()
    wanted = {user: set(values) for user, values in seqs.items()}
    while time.monotonic() - started < timeout:
        if all(wanted[u] <= set(checker.reports[u].received) for u in wanted):
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def last_seqs(database_url: str, users: Sequence[str]) -> dict[str, int]:
    """Each user's last committed seq, read from the database."""
    engine = create_engine(database_url)
    try:
        sessions = create_session_factory(engine)
        result = {}
        for user in users:
            async with sessions() as session:
                result[user] = (await snapshots.load(session, user_id=user, limit=1)).seq
        return result
    finally:
        await engine.dispose()
