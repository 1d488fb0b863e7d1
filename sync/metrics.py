"""Prometheus metrics of the relay. Each app passes its own registry: nothing is global."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["RelayMetrics"]

# Commit-to-publish lag buckets, in seconds; the target is p99 <= 0.05.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class RelayMetrics:
    """Counters and the freshness histogram of one relay.

    Metrics:
        ``checkin_relay_published_total``: outbox entries applied and published.
        ``checkin_relay_failures_total``: failed attempts (each is retried).
        ``checkin_relay_lag_seconds``: seconds from the writing transaction
        (``committed_at``) to the publish.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.published = Counter(
            "checkin_relay_published", "Outbox entries applied and published.", registry=registry
        )
        self.failures = Counter(
            "checkin_relay_failures", "Failed relay attempts (retried).", registry=registry
        )
        self.lag = Histogram(
            "checkin_relay_lag_seconds",
            "Seconds from commit to publish.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    def observe_published(self, committed_at: datetime, now: datetime) -> None:
        self.published.inc()
        self.lag.observe(max(0.0, (now - committed_at).total_seconds()))

    def observe_failure(self) -> None:
        self.failures.inc()
