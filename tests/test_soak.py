"""The short soak: one real ``serve`` under steady subscription traffic keeps its memory.

A leak kept about 1.5 KB per delivered subscription event (graphql-core's
per-event executor memo; see tests/test_subscription_memory.py): with 20
subscribers at 40 writes/s RSS grew by about 70 MiB a minute. This runs the
benchmark's harness (``make soak`` runs it for 10 minutes and 2,000 idle
subscriptions) for about a minute and fails on growth in proportion to the
events delivered. Growth is measured per delivered event, not per second, so
that a slow run on a busy machine (fewer events) does not hide a leak.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SoakConfig, report, run_soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# A third of the leak; a sound server measured 50-200 B (allocator and SQLite caches warming).
MAX_BYTES_PER_DELIVERY = 500
# Below this the run says too little to judge (the machine is starved).
MIN_DELIVERIES_PER_SECOND = 200


async def test_memory_does_not_grow_with_delivered_events(tmp_path: Path) -> None:
    config = SoakConfig(idle=200, live=20, rate=40, seconds=75, sample_every=2, warmup=25)
    result = await run_soak(config, tmp_path)
    text = "\n".join(report(result))
    assert result.delivered_all() and result.writer.failed == 0, text
    assert result.delivery_rate() >= MIN_DELIVERIES_PER_SECOND, text
    assert result.bytes_per_delivery() < MAX_BYTES_PER_DELIVERY, text
