"""The /metrics endpoint exposes the outbox backlog, relay freshness and broker state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from db.migrate import upgrade
from gql import Settings, create_app

from .conftest import GraphQLClient


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


async def test_metrics_count_published_entries_and_lag(
    client: httpx.AsyncClient, graphql: GraphQLClient
) -> None:
    before = (await client.get("/metrics")).text
    assert _value(before, "checkin_relay_published_total") == 0
    await graphql.data(
        'mutation { recordCheckIn(input: {userId: "u", intervalSeconds: 5}) { activity { id } } }'
    )
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert _value(text, "checkin_relay_published_total") == 2
    assert _value(text, "checkin_relay_lag_seconds_count") == 2
    assert _value(text, "checkin_outbox_backlog") == 0
    assert _value(text, "checkin_outbox_oldest_pending_seconds") == 0
    assert _value(text, "checkin_broker_connected") == 1


async def test_readyz_reports_each_dependency(client: httpx.AsyncClient) -> None:
    # On PostgreSQL the relay takes its lease just after start-up.
    for _ in range(100):
        response = await client.get("/readyz")
        if response.json().get("relay_leader"):
            break
        await asyncio.sleep(0.05)
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {
            "database": True,
            "store": True,
            "broker": True,
            "relay": True,
            "capacity": True,
        },
        "relay_leader": True,
    }


async def test_readyz_names_a_store_that_is_not_configured_absent(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        realtime_url="",
        escalation_policy="",  # type: ignore[arg-type]
    )
    await asyncio.to_thread(upgrade, settings.database_url)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {
            "database": True,
            "store": "absent",
            "broker": True,
            "relay": True,
            "capacity": True,
        },
        "relay_leader": True,
    }
