"""docs/grafana-dashboard.json charts only metrics that /metrics exposes, and all of them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gql import Settings

DASHBOARD = Path(__file__).parents[1] / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\bcheckin_[a-z0-9_]+\b")
# What a histogram or counter family's samples add to its name.
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        escalation_policy="",  # type: ignore[arg-type]
    )


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in _expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in _expressions(value)]
    return []


def _family(sample: str) -> str:
    for suffix in SUFFIXES:
        if sample.endswith(suffix):
            return sample.removesuffix(suffix)
    return sample


def test_the_dashboard_is_grafana_json_with_unique_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert dashboard["title"] and dashboard["uid"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["type"] == "prometheus"


async def test_every_metric_the_dashboard_charts_is_exposed_and_vice_versa(
    client: httpx.AsyncClient,
) -> None:
    # One write, so that every family has samples.
    await client.post(
        "/graphql",
        json={"query": 'mutation { addActivity(input: {userId: "u", type: "note"}) { seq } }'},
    )
    text = (await client.get("/metrics")).text
    samples = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    charted = {
        name
        for expr in _expressions(json.loads(DASHBOARD.read_text()))
        for name in METRIC.findall(expr)
    }
    assert charted, "no expressions found"
    missing = sorted(name for name in charted if name not in samples)
    assert not missing, f"charted but not in /metrics: {missing}"
    families = {_family(name) for name in samples if name.startswith("checkin_")}
    uncharted = sorted(f for f in families if not any(_family(c) == f for c in charted))
    assert not uncharted, f"in /metrics but on no panel: {uncharted}"
