"""Two ``checkin-realtime serve`` processes sharing PostgreSQL, Redis and a broker.

A graphql-transport-ws client on one instance receives, in order, every
activity written through the other; a write through the instance that does
not relay is still readable from it as soon as the mutation returns.
"""

from __future__ import annotations

import asyncio
import json
import os
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
from websockets.asyncio.client import ClientConnection, connect

from .conftest import redis_url

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 200
START_TIMEOUT = 30.0

ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq type } }"
ACTIVITY_ADDED = "subscription($u: String!) { activityAdded(userId: $u) { seq type description } }"
RECENT = "query($u: String!) { recentActivities(userId: $u, first: 1) { edges { node { seq } } } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Instance:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start ``checkin-realtime serve`` processes; all stop at the end (SIGTERM, then SIGKILL)."""
    started: list[Instance] = []

    def start(env: dict[str, str]) -> Instance:
        port = _free_port()
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "gql.cli", "serve", "--port", str(port)],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        instance = Instance(process, port, log)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        if instance.process.poll() is None:
            instance.process.send_signal(signal.SIGTERM)
    for instance in started:
        try:
            instance.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            instance.process.kill()
            instance.process.wait()


async def _ready(http: httpx.AsyncClient, instance: Instance) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if instance.process.poll() is not None:
            raise AssertionError(f"instance exited early:\n{instance.output()}")
        try:
            response = await http.get(f"{instance.url}/readyz")
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"instance not ready in {START_TIMEOUT} s:\n{instance.output()}")
        await asyncio.sleep(0.1)


async def _mutate(http: httpx.AsyncClient, instance: Instance, description: str) -> dict[str, Any]:
    response = await http.post(
        f"{instance.url}/graphql",
        json={
            "query": ADD,
            "variables": {"input": {"userId": "u1", "type": "note", "description": description}},
        },
    )
    body = response.json()
    assert "errors" not in body, body
    added: dict[str, Any] = body["data"]["addActivity"]
    return added


class Subscription:
    """A graphql-transport-ws client with one ``activityAdded`` subscription."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def next(self, timeout: float) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            data: dict[str, Any] = message["payload"]["data"]["activityAdded"]
            return data


@asynccontextmanager
async def _subscribe(instance: Instance) -> AsyncIterator[Subscription]:
    async with connect(
        f"ws://127.0.0.1:{instance.port}/graphql", subprotocols=["graphql-transport-ws"]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": ACTIVITY_ADDED, "variables": {"u": "u1"}},
                }
            )
        )
        yield Subscription(ws)


@pytest.mark.parametrize("broker", ["redis", "pg"])
async def test_subscriber_on_one_instance_gets_every_write_to_the_other_in_order(
    empty_postgres_url: str, redis_prefix: str, serve: Any, broker: str
) -> None:
    # ``serve`` comes after the database and prefix fixtures, so that its
    # processes stop before the database is dropped.
    env = {
        "DATABASE_URL": empty_postgres_url,
        "REALTIME_URL": redis_url(redis_prefix),
        "BROADCAST_URL": redis_url(redis_prefix) if broker == "redis" else empty_postgres_url,
        "GRAPHIQL": "false",
    }
    # Started together on an empty database: both migrate on start-up.
    instances = [serve(env), serve(env)]
    async with httpx.AsyncClient(timeout=10) as http:
        ready = [await _ready(http, instance) for instance in instances]
        leaders = [body["relay_leader"] for body in ready]
        assert sorted(leaders) == [False, True], ready
        # Write through the relaying instance, subscribe on the other: events
        # must cross the broker.
        writer, reader = instances if leaders[0] else instances[::-1]

        async with _subscribe(reader) as subscription:
            # The server subscribes to the broker shortly after "subscribe";
            # probe until an event gets through.
            deadline = time.monotonic() + 10
            while True:
                await _mutate(http, writer, "probe")
                try:
                    await subscription.next(timeout=0.5)
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "subscription never went live"

            started = time.monotonic()
            sent = [(await _mutate(http, writer, f"n{i}"))["seq"] for i in range(EVENTS)]
            received: list[int] = []
            while len(received) < EVENTS:
                event = await subscription.next(timeout=10)
                if event["description"] != "probe":
                    received.append(event["seq"])
            elapsed = time.monotonic() - started
            assert received == sent
            assert sent == list(range(sent[0], sent[0] + EVENTS))

            # A write through the instance that does not relay: the relaying one
            # hears of it through the database and publishes it; the mutation
            # returns once it has, not after the full write wait (2 s).
            before = time.monotonic()
            own = await _mutate(http, reader, "through the follower")
            waited = time.monotonic() - before
            assert waited < 1.5, waited
            assert (await subscription.next(timeout=5))["seq"] == own["seq"]
            recent = await http.post(
                f"{reader.url}/graphql", json={"query": RECENT, "variables": {"u": "u1"}}
            )
            assert recent.json()["data"]["recentActivities"]["edges"][0]["node"] == {
                "seq": own["seq"]
            }
    print(f"{broker}: {EVENTS} events across instances in {elapsed:.2f} s")
