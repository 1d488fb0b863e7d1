"""``checkin-realtime simulate`` against a real server: sane counts, every write seen live."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import start_server

pytestmark = pytest.mark.e2e

RATE = 20.0
SECONDS = 6.0


def test_simulate_drives_check_ins_missed_check_ins_and_notes(tmp_path: Path) -> None:
    # WARNING as soon as nextDue passes, so a missed check-in escalates within the run.
    server = start_server(tmp_path, settings={"ESCALATION_POLICY": "WARNING:0"})
    try:
        result = subprocess.run(
            [
                *[sys.executable, "-m", "gql.cli", "simulate"],
                *["--url", server.graphql_url, "--users", "8", "--rate", str(RATE)],
                *["--interval", "1", "--miss", "0.3", "--seed", "7"],
                *["--duration", str(SECONDS), "--json"],
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        with sqlite3.connect(tmp_path / "checkin.db") as db:
            stored = dict(db.execute("SELECT type, count(*) FROM activities GROUP BY type"))
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["errors"] == 0, summary
    writes = summary["writes_by_kind"]
    assert 10 <= summary["writes"] <= 2 * RATE * SECONDS, summary
    assert writes["check_in"] > 0 and writes["note"] > 0, summary
    assert summary["missed_check_ins"] > 0, summary
    # Every write the simulator sent is stored once and came back through its subscriptions.
    assert stored["check_in"] == writes["check_in"] and stored["note"] == writes["note"]
    events = summary["events_by_type"]
    assert events["check_in"] == writes["check_in"] and events["note"] == writes["note"], summary
    # The service escalated some missed check-ins on its own, and the simulator saw it
    # (the server may escalate more after the simulator has stopped following).
    assert summary["escalations"] >= 1
    assert 1 <= events["missed_check_in"] <= stored["missed_check_in"], (summary, stored)
    p50, p95, top = (summary[f"latency_{q}_ms"] for q in ("p50", "p95", "max"))
    assert 0 <= p50 <= p95 <= top < 10_000, summary
