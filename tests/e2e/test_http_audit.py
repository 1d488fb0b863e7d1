"""The GraphQL-over-HTTP audit suite of ``graphql-http`` (``serverAudits``) against the real server.

Every audit must pass: a ``warn`` (a SHOULD the server misses) fails the test
like an ``error`` (a MUST). The suite's version is pinned by
``tests/e2e/package-lock.json``; 1.23 has 61 audits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, run_node

pytestmark = pytest.mark.e2e

AUDITS = 61
SCRIPT_TIMEOUT = 30.0


def _describe(failure: dict[str, Any]) -> str:
    return (
        f"{failure['id']} {failure['status']}: {failure['name']}\n"
        f"  {failure.get('reason')}\n"
        f"  HTTP {failure.get('httpStatus')} {failure.get('contentType')}: {failure.get('body')}"
    )


async def test_every_graphql_over_http_audit_passes(
    node: str, server: Server, tmp_path: Path
) -> None:
    async with asyncio.timeout(SCRIPT_TIMEOUT + 10):
        async with run_node(node, "audit.mjs", server.graphql_url, log_dir=tmp_path) as audit:
            results: list[dict[str, Any]] = []
            while (line := await audit.message(SCRIPT_TIMEOUT)) is not None:
                results.append(line)
            code = await audit.wait(5.0)
    assert code == 0, audit.describe()
    ids = [result["id"] for result in results]
    assert len(ids) == len(set(ids)), ids
    counts = {status: sum(r["status"] == status for r in results) for status in ("ok", "warn")}
    failures = [result for result in results if result["status"] != "ok"]
    report = "\n".join(_describe(failure) for failure in failures)
    print(f"graphql-http audits: {counts['ok']} ok, {len(failures)} not ok\n{report}")
    assert not failures, f"{len(failures)} audits not ok:\n{report}"
    assert len(results) == AUDITS, f"expected {AUDITS} audits, ran {len(results)}: {ids}"
