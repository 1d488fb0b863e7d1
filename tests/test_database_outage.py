"""PostgreSQL restarts under a real server: writes get SERVICE_UNAVAILABLE, never a bug's code.

A private cluster (never the machine's own) is stopped while ``serve`` runs
against it: a mutation then fails with ``SERVICE_UNAVAILABLE``, HTTP 503 and
``Retry-After``; the writes acknowledged before are all there once it is back,
the refused one is not, and writes succeed again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql.codes import ErrorCode
from tests.conftest import require_service
from tests.helpers.postgres_cluster import PrivateCluster, postgres_bin
from tests.servers import Server, start_server

ADD = """mutation($d: String!) {
  addActivity(input: {userId: "u1", type: "note", description: $d}) { seq }
}"""
FEED = '{ recentActivities(userId: "u1", first: 100) { edges { node { description } } } }'
BEFORE = 5


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    bin_dir = postgres_bin()
    require_service(bin_dir is not None, "no PostgreSQL server binaries (initdb, pg_ctl)")
    assert bin_dir is not None
    cluster = PrivateCluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


async def _add(server: Server, description: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            server.graphql_url, json={"query": ADD, "variables": {"d": description}}
        )


async def _descriptions(server: Server) -> list[str]:
    data: dict[str, Any] = await server.execute(FEED)
    edges = data["recentActivities"]["edges"]
    return sorted(edge["node"]["description"] for edge in edges)


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_writes_get_service_unavailable_while_postgres_is_down(
    tmp_path: Path, cluster: PrivateCluster
) -> None:
    # No realtime store: reads then come from the database, the source of truth.
    server = start_server(
        tmp_path,
        settings={"DATABASE_URL": cluster.url, "BROADCAST_URL": "memory://", "REALTIME_URL": ""},
    )
    try:
        for index in range(BEFORE):
            response = await _add(server, f"before-{index}")
            assert response.status_code == 200 and "errors" not in response.json(), response.text

        cluster.stop()
        refused = await _add(server, "during")
        cluster.start()

        body = refused.json()
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert body["data"] is None, body
        assert [e["extensions"]["code"] for e in body["errors"]] == [
            ErrorCode.SERVICE_UNAVAILABLE
        ], body

        # The pool's connections died with the server: the first write after
        # it is back may still find one and be refused the same way.
        for _ in range(20):
            again = await _add(server, "after")
            if again.status_code == 200:
                break
            assert again.status_code == 503, again.text
        assert again.status_code == 200 and "errors" not in again.json(), again.text
        expected = sorted([*(f"before-{i}" for i in range(BEFORE)), "after"])
        assert await _descriptions(server) == expected
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text()
