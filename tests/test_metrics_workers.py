"""``serve --workers 2``: /metrics answers with the counts of both worker processes summed."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from gql.cli import main

from .servers import start_server

QUERY_OK = ("checkin_http_operations_total", (("operation_type", "query"), ("outcome", "ok")))


def _queries_ok(samples: list[tuple[str, dict[str, str], float]]) -> float:
    name, labels = QUERY_OK
    return sum(v for n, lab, v in samples if n == name and tuple(sorted(lab.items())) == labels)


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _per_process(directory: Path, scratch: Path) -> dict[int, float]:
    """Each worker's own count of queries, read from its file alone."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(re.fullmatch(r"counter_(\d+)\.db", path.name)[1])  # type: ignore[index]
        alone = scratch / str(pid)
        alone.mkdir(parents=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        samples = [
            (sample.name, dict(sample.labels), sample.value)
            for family in registry.collect()
            for sample in family.samples
        ]
        counts[pid] = _queries_ok(samples)
    return counts


@pytest.mark.timeout(180)
async def test_two_workers_report_their_counts_summed(tmp_path: Path, postgres_url: str) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # A previous run's file: serve empties the directory, or it would count too.
    (metrics_dir / "counter_1.db").write_bytes(b"\0" * 16)
    server = await asyncio.to_thread(
        start_server,
        tmp_path,
        settings={"DATABASE_URL": postgres_url, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        args=["--workers", "2", "--no-migrate"],
    )
    try:
        sent = 0
        counts: dict[int, float] = {}
        # New connections, several at once, until both workers have served some.
        for _ in range(40):
            async with httpx.AsyncClient(
                timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
            ) as http:
                responses = await asyncio.gather(
                    *(
                        http.post(server.graphql_url, json={"query": "{ __typename }"})
                        for _ in range(8)
                    )
                )
            assert all(r.status_code == 200 for r in responses)
            sent += len(responses)
            counts = _per_process(metrics_dir, tmp_path / f"scratch{sent}")
            if len([c for c in counts.values() if c > 0]) >= 2:
                break
        assert len([c for c in counts.values() if c > 0]) == 2, counts
        assert sum(counts.values()) == sent
        # Whichever worker answers the scrape, it reports both workers' counts.
        async with httpx.AsyncClient(
            timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
        ) as http:
            for _ in range(6):
                text = (await http.get(f"{server.base_url}/metrics")).text
                samples = _samples(text)
                assert _queries_ok(samples) == sent
                # A live gauge is one series for the whole instance, not one per process.
                gauges = [s for s in samples if s[0] == "checkin_websocket_connections"]
                assert len(gauges) == 1 and gauges[0][2] == 0 and "pid" not in gauges[0][1]
    finally:
        server.stop()
    assert not (metrics_dir / "counter_1.db").exists()


@pytest.mark.parametrize("workers", ["0", "-1", "65", "two"])
def test_a_worker_count_out_of_range_is_refused(workers: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--workers", workers])
    assert exit_info.value.code == 2
