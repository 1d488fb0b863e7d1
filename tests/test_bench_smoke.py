"""``make bench`` at smoke sizes: it runs, and ``results.json`` holds each selected figure, whole.

No figure's value is judged here (the targets belong to the bench, measured
at full size against same-run references); a broken harness, a crashing
figure or a malformed result fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import POSTGRES_URL, REDIS_URL

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {"name", "what", "unit", "value", "reference", "reference_what", "ratio", "target", "met"}


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    output = tmp_path / "results.json"
    env = {**os.environ, "BENCH_POSTGRES_URL": POSTGRES_URL, "BENCH_REDIS_URL": REDIS_URL}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--output", str(output), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| Figure | Value | Reference (same run) | Ratio | Target | Met |" in done.stdout
    result: dict[str, Any] = json.loads(output.read_text())
    assert result["sizes"] == "smoke"
    assert result["date"].endswith("Z") and result["machine"]["cpus"] >= 1
    return result


def _check(figure: dict[str, Any]) -> None:
    assert FIELDS <= figure.keys(), figure
    assert figure["note"] != "not measured", figure
    assert isinstance(figure["value"], int | float), figure
    assert isinstance(figure["met"], bool), figure
    assert isinstance(figure["target"], str) and figure["target"], figure
    if figure["reference"] is None:
        assert figure["ratio"] is None, figure
    else:
        assert figure["reference"] > 0, figure
        assert figure["ratio"] == pytest.approx(figure["value"] / figure["reference"], abs=1e-3)


@pytest.mark.timeout(180)
def test_sqlite_figures_run_and_are_well_formed(tmp_path: Path) -> None:
    result = _run(tmp_path, "--only", "Q1,Q1-db,F1,M1,H1", "--backends", "sqlite")
    figures = result["figures"]
    assert [f["name"] for f in figures] == ["Q1", "Q1-db", "F1", "M1", "H1", "H1"]
    for figure in figures:
        _check(figure)
    # The query references answered exactly what serve answered.
    assert all(f["details"]["same_json"] for f in figures if f["name"].startswith("Q1"))
    assert result["load_generator"]["rps"] > 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_postgres_figures_run_and_are_well_formed(
    tmp_path: Path, postgres_server: object, redis_server: str
) -> None:
    result = _run(tmp_path, "--only", "Q1,L1,X1,W1", "--backends", "postgres")
    figures = result["figures"]
    assert [f["name"] for f in figures] == ["Q1", "L1", "X1", "W1"]
    for figure in figures:
        _check(figure)
