"""Commit-to-client latency of a subscription, against an HTTP round trip measured in the same run.

Starts a real ``checkin-realtime serve`` (settings from the environment, SQLite
by default), subscribes to ``activityAdded`` over graphql-transport-ws, then
sends ``addActivity`` mutations one at a time at a steady pace. For each, the
latency is the time from sending the mutation to receiving its event on the
socket, so it includes the commit, the relay and the fan-out. The reference is
the round trip of a trivial ``{ __typename }`` query on the same server in the
same run, so the ratio says what the real-time path costs beyond a request.

    python -m bench.latency [--events 500] [--rate 50]

Prints p50/p95/p99 in milliseconds for both, and the p99 ratio. Target: p99 of
the event path <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from .server import start_serve

ADD = 'mutation($u: String!) { addActivity(input: {userId: $u, type: "note"}) { seq } }'
SUBSCRIBE = 'subscription { activityAdded(userId: "bench", after: 0) { seq } }'


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000}


async def _run(events: int, rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_serve(Path(tmp), {})
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                await http.post(
                    server.graphql_url, json={"query": ADD, "variables": {"u": "bench"}}
                )
                async with connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
                    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                    await ws.recv()
                    payload = {"query": SUBSCRIBE}
                    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                    await ws.recv()  # the replayed first event: the subscription is live
                    arrived: dict[int, float] = {}
                    all_arrived = asyncio.Event()

                    async def reader() -> None:
                        async for raw in ws:
                            message = json.loads(raw)
                            if message["type"] == "next":
                                seq = message["payload"]["data"]["activityAdded"]["seq"]
                                arrived[seq] = time.perf_counter()
                                if len(arrived) == events:
                                    all_arrived.set()

                    task = asyncio.create_task(reader())
                    sent: dict[int, float] = {}
                    reference: list[float] = []
                    for _ in range(events):
                        started = time.perf_counter()
                        await http.post(server.graphql_url, json={"query": "{ __typename }"})
                        reference.append(time.perf_counter() - started)
                        started = time.perf_counter()
                        response = await http.post(
                            server.graphql_url, json={"query": ADD, "variables": {"u": "bench"}}
                        )
                        sent[response.json()["data"]["addActivity"]["seq"]] = started
                        await asyncio.sleep(1 / rate)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(all_arrived.wait(), 10)
                    task.cancel()
            latency = [arrived[seq] - at for seq, at in sent.items() if seq in arrived]
        finally:
            server.stop()
    event = _percentiles(latency)
    ref = _percentiles(reference)
    print(f"events: {len(latency)}/{events} delivered at {rate}/s")
    print("event path (send mutation -> event on socket): " + _fmt(event))
    print("reference (HTTP { __typename } round trip):      " + _fmt(ref))
    print(f"p99 ratio event/reference: {event['p99'] / ref['p99']:.2f}")
    print(f"p99 target 50 ms: {'met' if event['p99'] <= 50 else 'NOT met'}")


def _fmt(values: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.1f} ms" for k, v in values.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="mutations per second")
    args = parser.parse_args()
    asyncio.run(_run(args.events, args.rate))


if __name__ == "__main__":
    main()
