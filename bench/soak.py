"""Soak: does one ``serve`` process hold its memory flat under steady subscription traffic?

Starts one real ``checkin-realtime serve`` (dev mode, SQLite, memory store and
broker), opens idle subscriptions (to users nobody writes to) and live
subscribers of one user, then writes activities of that user at a steady,
open-loop rate. Every live subscriber must get every event: seqs 1..N, in
order, once each. The server's resident memory (VmRSS) is sampled as it goes.

    python -m bench.soak [--minutes 10] [--idle 2000] [--per-socket 1] [--live 20] [--rate 40]

Prints a table of the samples and writes bench/soak-results.json. PASS when
RSS stays within +-5 % of its value at minute 1 until the end, every live
subscriber got every event, and every scheduled write was acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .load import IdleSockets, LiveSubscriber, Writer
from .server import Serve, start_serve

__all__ = ["Sample", "SoakConfig", "SoakResult", "run_soak"]

MIB = 1024 * 1024
RESULTS = Path(__file__).with_name("soak-results.json")
# Per-principal caps may refuse a crowd of sockets from one dev-mode admin; the
# soak measures memory, not caps, so it lifts them.
UNCAPPED = {
    "MAX_SUBSCRIPTIONS_PER_USER": "0",
    "MAX_SUBSCRIPTIONS_PER_SERVICE": "0",
    "MAX_SOCKETS_PER_USER": "0",
    "MAX_SOCKETS_PER_SERVICE": "0",
    "MAX_PENDING_SOCKETS_PER_ADDRESS": "0",
}
# Seconds the live subscribers get to catch up with the last write.
DRAIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class SoakConfig:
    """What to run. Durations in seconds."""

    idle: int = 2000
    per_socket: int = 1
    live: int = 20
    rate: float = 40.0
    seconds: float = 600.0
    sample_every: float = 10.0
    warmup: float = 60.0
    tolerance: float = 0.05
    settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """The server at ``t`` seconds after the first write."""

    t: float
    rss: int
    acknowledged: int
    delivered: int


@dataclass
class SoakResult:
    config: SoakConfig
    samples: list[Sample]
    writer: Writer
    live: list[LiveSubscriber]
    idle: IdleSockets
    setup_seconds: float
    # CPU seconds over the run, to show which side was the bottleneck.
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    def steady(self) -> list[Sample]:
        """Samples from the end of the warm-up on."""
        return [s for s in self.samples if s.t >= self.config.warmup]

    def slope(self) -> float:
        """Least-squares RSS growth after the warm-up, in bytes per second."""
        steady = self.steady()
        if len(steady) < 2:
            return 0.0
        fit = statistics.linear_regression([s.t for s in steady], [float(s.rss) for s in steady])
        return fit.slope

    def delivery_rate(self) -> float:
        """Events delivered per second over all live subscribers, after the warm-up."""
        steady = self.steady()
        if len(steady) < 2 or steady[-1].t <= steady[0].t:
            return 0.0
        events = (steady[-1].delivered - steady[0].delivered) * len(self.live)
        return events / (steady[-1].t - steady[0].t)

    def bytes_per_delivery(self) -> float:
        """RSS growth per delivered event after the warm-up (a leak of ~1.5 KB showed as that)."""
        rate = self.delivery_rate()
        return self.slope() / rate if rate else 0.0

    def drift(self) -> tuple[float, float]:
        """Lowest and highest RSS after the warm-up, relative to the first (-0.02 is -2 %)."""
        steady = self.steady()
        if not steady:
            return (0.0, 0.0)
        base = steady[0].rss
        return (min(s.rss for s in steady) / base - 1, max(s.rss for s in steady) / base - 1)

    def memory_flat(self) -> bool:
        low, high = self.drift()
        return len(self.steady()) >= 2 and -self.config.tolerance <= low <= high <= (
            self.config.tolerance
        )

    def delivered_all(self) -> bool:
        """Every live subscriber got seqs 1..N in order, N covering every acknowledged write."""
        return all(s.complete and s.last_seq >= self.writer.max_seq for s in self.live)

    def wrote_all(self) -> bool:
        w = self.writer
        return w.scheduled > 0 and w.acknowledged == w.scheduled

    def passed(self) -> bool:
        return self.memory_flat() and self.delivered_all() and self.wrote_all()


def raise_fd_limit(sockets: int) -> None:
    """Lift the soft descriptor limit to the hard one; the server inherits it.

    Raises:
        SystemExit: the hard limit is too low for ``sockets`` client sockets.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * sockets + 512  # both ends live in processes started here, plus files
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"the descriptor limit is {hard}; {needed} needed (ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _wait_subscribed(serve: Serve, expected: int, timeout: float = 120.0) -> None:
    """Wait until the server's hub counts ``expected`` subscribers (``/metrics``)."""
    deadline = time.monotonic() + timeout
    seen = -1.0
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            text = (await http.get(f"{serve.base_url}/metrics")).text
            for line in text.splitlines():
                if line.startswith("checkin_broadcast_subscribers "):
                    seen = float(line.split()[1])
            if seen >= expected:
                return
            # No event says "all subscribed"; the gauge is polled.
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{seen:.0f} of {expected} subscriptions reached the server's hub")


async def _sample(serve: Serve, result: SoakResult, start: float, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    n = 0
    while True:
        result.samples.append(
            Sample(
                t=round(loop.time() - start, 1),
                rss=serve.rss_bytes(),
                acknowledged=result.writer.acknowledged,
                delivered=min((s.received for s in result.live), default=0),
            )
        )
        n += 1
        delay = start + n * result.config.sample_every - loop.time()
        try:
            await asyncio.wait_for(stop.wait(), max(delay, 0))
            return
        except TimeoutError:
            pass


async def _drain(result: SoakResult) -> None:
    """Wait until every live subscriber has the last acknowledged write, or gave up."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        if all(s.last_seq >= result.writer.max_seq or s.fault_count for s in result.live):
            return
        # Events arrive on their own sockets; there is nothing else to await.
        await asyncio.sleep(0.1)


async def run_soak(config: SoakConfig, directory: Path) -> SoakResult:
    """Run one soak against a new ``serve`` in ``directory``; returns what was seen."""
    raise_fd_limit(config.idle // config.per_socket + config.live + 256)
    started = time.monotonic()
    serve = start_serve(directory, {**UNCAPPED, **config.settings})
    idle = IdleSockets()
    live: list[LiveSubscriber] = []
    try:
        await idle.open(serve.ws_url, subscriptions=config.idle, per_socket=config.per_socket)
        for i in range(config.live):
            live.append(await LiveSubscriber.start(serve.ws_url, index=i))
        await _wait_subscribed(serve, config.idle + config.live)
        result = SoakResult(
            config,
            [],
            Writer(serve.graphql_url, config.rate),
            live,
            idle,
            round(time.monotonic() - started, 1),
        )
        server_cpu, client_cpu = serve.cpu_seconds(), time.process_time()
        stop = asyncio.Event()
        sampler = asyncio.create_task(
            _sample(serve, result, asyncio.get_running_loop().time(), stop)
        )
        await result.writer.run(config.seconds)
        stop.set()
        await sampler
        result.server_cpu = round(serve.cpu_seconds() - server_cpu, 1)
        result.client_cpu = round(time.process_time() - client_cpu, 1)
        await _drain(result)
        return result
    finally:
        await asyncio.gather(*(s.close() for s in live), return_exceptions=True)
        await idle.close()
        serve.stop()


def report(result: SoakResult) -> list[str]:
    """The table of samples and the verdict, as lines of text."""
    config, writer = result.config, result.writer
    base = result.steady()[0].rss if result.steady() else result.samples[0].rss
    lines = [
        f"serve: {config.idle} idle subscriptions on {-(-config.idle // config.per_socket)} "
        f"sockets, {config.live} live subscribers, {config.rate:g} writes/s for "
        f"{config.seconds:g} s (set up in {result.setup_seconds:g} s)",
        "",
        f"{'t (s)':>7} {'RSS (MiB)':>10} {'vs warm':>8} {'writes':>7} {'delivered':>10}",
    ]
    for s in result.samples:
        lines.append(
            f"{s.t:7.0f} {s.rss / MIB:10.1f} {(s.rss / base - 1) * 100:+7.1f}% "
            f"{s.acknowledged:7d} {s.delivered:10d}"
        )
    low, high = result.drift()
    latency = sorted(writer.latencies) or [0.0]
    subscribers_ok = sum(s.complete and s.last_seq >= writer.max_seq for s in result.live)
    verdicts = [
        (
            result.memory_flat(),
            f"memory: after {config.warmup:g} s RSS moved {low * 100:+.1f}% .. "
            f"{high * 100:+.1f}% (limit +-{config.tolerance * 100:g}%); "
            f"trend {result.slope() * 60 / MIB:+.2f} MiB/min, "
            f"{result.bytes_per_delivery():+.0f} B per delivered event",
        ),
        (
            result.delivered_all(),
            f"delivery: {subscribers_ok}/{config.live} live subscribers got seqs "
            f"1..{writer.max_seq} in order, once each",
        ),
        (
            result.wrote_all(),
            f"writes: {writer.acknowledged}/{writer.scheduled} acknowledged, {writer.failed} "
            f"failed, {writer.skipped} skipped; latency p50 "
            f"{latency[len(latency) // 2] * 1000:.0f} ms, p99 "
            f"{latency[int(len(latency) * 0.99)] * 1000:.0f} ms",
        ),
    ]
    lines.append("")
    lines.append(
        f"cpu over {config.seconds:g} s: server {result.server_cpu:g} s, "
        f"load generator {result.client_cpu:g} s"
    )
    lines.extend(f"{'ok  ' if ok else 'FAIL'} {text}" for ok, text in verdicts)
    faults = writer.faults + result.idle.faults + [f for s in result.live for f in s.faults]
    lines.extend(f"     {fault}" for fault in faults[:10])
    lines.append("PASS" if result.passed() else "FAIL")
    return lines


def to_json(result: SoakResult) -> dict[str, Any]:
    writer = result.writer
    return {
        "config": asdict(result.config),
        "passed": result.passed(),
        "memory_flat": result.memory_flat(),
        "delivered_all": result.delivered_all(),
        "wrote_all": result.wrote_all(),
        "rss_drift": result.drift(),
        "rss_slope_bytes_per_second": result.slope(),
        "deliveries_per_second": result.delivery_rate(),
        "rss_bytes_per_delivery": result.bytes_per_delivery(),
        "setup_seconds": result.setup_seconds,
        "cpu_seconds": {"server": result.server_cpu, "load_generator": result.client_cpu},
        "writes": {
            "scheduled": writer.scheduled,
            "acknowledged": writer.acknowledged,
            "failed": writer.failed,
            "skipped": writer.skipped,
            "max_seq": writer.max_seq,
        },
        "live": [{"received": s.received, "last_seq": s.last_seq} for s in result.live],
        "idle_unexpected_messages": result.idle.unexpected,
        "samples": [asdict(s) for s in result.samples],
    }


def _parse(argv: list[str] | None) -> SoakConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=2000, help="idle subscriptions")
    parser.add_argument("--per-socket", type=int, default=1, help="idle subscriptions a socket")
    parser.add_argument("--live", type=int, default=20, help="live subscribers")
    parser.add_argument("--rate", type=float, default=40.0, help="writes per second")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="a server setting"
    )
    args = parser.parse_args(argv)
    return SoakConfig(
        idle=args.idle,
        per_socket=args.per_socket,
        live=args.live,
        rate=args.rate,
        seconds=args.minutes * 60,
        sample_every=args.sample_every,
        warmup=args.warmup,
        settings=dict(item.split("=", 1) for item in args.env),
    )


def main(argv: list[str] | None = None) -> int:
    config = _parse(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run_soak(config, Path(tmp)))
    print("\n".join(report(result)))
    RESULTS.write_text(json.dumps(to_json(result), indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0 if result.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
