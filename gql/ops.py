"""Operational endpoints: ``/healthz``, ``/readyz`` and ``/metrics``, and the metrics they read.

* ``/healthz``: the process is up.
* ``/readyz``: database, store and broker each answer and the instance holds
  fewer than ``MAX_CONNECTIONS`` WebSockets; 503 otherwise, so a load balancer
  routes new clients elsewhere. Its body is ``{"ready": bool, "checks":
  {"database", "store", "broker", "relay", "capacity": bool}, "relay_leader":
  bool}``, except that ``"store"`` is ``"absent"`` when no realtime store is
  configured (``REALTIME_URL`` empty: queries read the database, which is no
  fault); ``relay_leader`` tells which instance relays the outbox and does not
  affect readiness. From SIGTERM on it is 503 whatever the checks say (:mod:`gql.shutdown`).
* ``/metrics``: Prometheus metrics (see :class:`ServiceMetrics`, :mod:`sync.metrics`,
  :mod:`gql.metrics`); with several worker processes, every process's values
  summed (see :func:`gql.metrics.exposition_registry`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import ClassVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from db import outbox, utcnow

from .context import Services
from .metrics import exposition_registry

__all__ = ["STORE_ABSENT", "ServiceMetrics", "create_ops_router"]

#: ``/readyz``'s ``checks.store`` when no realtime store is configured.
STORE_ABSENT = "absent"

logger = logging.getLogger(__name__)


def create_ops_router(registry: CollectorRegistry) -> APIRouter:
    """The routes above; ``/metrics`` exposes ``registry`` and a :class:`ServiceMetrics`.

    The handlers read the running services from ``app.state.services``, which
    the lifespan sets.
    """
    collector = ServiceMetrics()
    exposed = exposition_registry(registry, collector)
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        checks: dict[str, bool | str] = {
            "database": await _database_ok(services),
            "store": STORE_ABSENT if services.store is None else await _store_ok(services),
            "broker": services.hub.healthy,
            "relay": services.relay.running,
            "capacity": not services.admission.full,
        }
        # Shutting down (gql/shutdown.py): 503 at once, so the load balancer drains us.
        draining = request.app.state.drain.draining
        ready = (
            all(value is True or value == STORE_ABSENT for value in checks.values())
            and not draining
        )
        body = {"ready": ready, "checks": checks, "relay_leader": services.relay.leading}
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        services: Services = request.app.state.services
        await collector.refresh(services)
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)

    return router


class ServiceMetrics(Collector):
    """Metrics read from the running services at scrape time (no global state).

    Gauges: ``checkin_outbox_backlog`` (entries not yet published),
    ``checkin_outbox_oldest_pending_seconds``, ``checkin_broker_connected`` (1/0),
    ``checkin_broadcast_channels``, ``checkin_broadcast_subscribers``,
    ``checkin_broadcast_queued_events`` (unread events in all inboxes).
    Counters: ``checkin_broadcast_overflows_total`` (subscribers cut off for
    reading too slowly), ``checkin_broker_disconnects_total``.

    With several worker processes these are the values of the process that
    answers the scrape (the outbox ones are the same in every process).
    """

    def __init__(self) -> None:
        self._values: dict[str, float] = {}

    async def refresh(self, services: Services) -> None:
        try:
            async with services.sessions() as session:
                count, oldest = await outbox.backlog(session, now=utcnow())
        except Exception as exc:
            logger.warning("metrics: outbox backlog query failed: %r", exc)
        else:
            self._values["checkin_outbox_backlog"] = count
            self._values["checkin_outbox_oldest_pending_seconds"] = oldest
        hub = services.hub
        self._values.update(
            {
                "checkin_broker_connected": 1 if hub.healthy else 0,
                "checkin_broadcast_channels": hub.channels,
                "checkin_broadcast_subscribers": hub.subscribers,
                "checkin_broadcast_queued_events": hub.queued,
                "checkin_broadcast_overflows": hub.overflows,
                "checkin_broker_disconnects": hub.disconnects,
            }
        )

    HELP: ClassVar[dict[str, str]] = {
        "checkin_outbox_backlog": "Outbox entries not yet published.",
        "checkin_outbox_oldest_pending_seconds": "Age of the oldest unpublished entry (s).",
        "checkin_broker_connected": "1 while the broker connection is up.",
        "checkin_broadcast_channels": "Channels with a local subscriber.",
        "checkin_broadcast_subscribers": "Local channel subscribers.",
        "checkin_broadcast_queued_events": "Unread events in all subscriber inboxes.",
        "checkin_broadcast_overflows": "Subscribers cut off for reading too slowly.",
        "checkin_broker_disconnects": "Broker connections lost.",
    }
    COUNTERS: ClassVar[frozenset[str]] = frozenset(
        {"checkin_broadcast_overflows", "checkin_broker_disconnects"}
    )

    def collect(self) -> Iterator[Metric]:
        for name, value in self._values.items():
            family = CounterMetricFamily if name in self.COUNTERS else GaugeMetricFamily
            yield family(name, self.HELP[name], value=value)


async def _database_ok(services: Services) -> bool:
    try:
        async with services.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readiness: database check failed: %r", exc)
        return False
    return True


async def _store_ok(services: Services) -> bool:
    assert services.store is not None
    try:
        return await services.store.ping()
    except Exception as exc:
        logger.warning("readiness: store check failed: %r", exc)
        return False
