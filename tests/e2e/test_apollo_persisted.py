"""Apollo Client's PersistedQueryLink (APQ) against the real server: GET, POST, WebSocket."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, run_node

pytestmark = pytest.mark.e2e

TEST_TIMEOUT = 30.0
SCRIPT_TIMEOUT = 20.0


async def test_apollo_persisted_query_link(node: str, server: Server, tmp_path: Path) -> None:
    user = "apq-user"
    async with asyncio.timeout(TEST_TIMEOUT):
        await server.execute(
            "mutation($u: String!) { updateUserStatus(input: {userId: $u, alertLevel: WARNING}) "
            "{ version } }",
            {"u": user},
        )
        async with run_node(
            node,
            "apollo_persisted.mjs",
            server.graphql_url,
            server.ws_url,
            user,
            str(SCRIPT_TIMEOUT),
            log_dir=tmp_path,
        ) as client:
            steps: dict[str, dict[str, Any]] = {}
            while (message := await client.message(SCRIPT_TIMEOUT)) is not None:
                steps[message["op"]] = message
            code = await client.wait(5.0)
    assert code == 0, client.describe()
    assert list(steps) == ["first", "again", "mutation", "subscription"], client.describe()

    status = {"__typename": "UserStatus", "userId": user, "alertLevel": "WARNING", "version": 1}
    # A hash the server has not seen: GET with the hash alone, PERSISTED_QUERY_NOT_FOUND,
    # then the link's retry by POST with the query, which registers it.
    first = steps["first"]
    assert first["data"] == status
    hash_ = first["requests"][0]["hash"]
    assert len(hash_) == 64
    assert first["requests"] == [
        {"method": "GET", "query": False, "hash": hash_, "codes": ["PERSISTED_QUERY_NOT_FOUND"]},
        {"method": "POST", "query": True, "hash": hash_, "codes": []},
    ]
    # Another client with the same query: one GET, by hash only.
    assert steps["again"]["data"] == status
    assert steps["again"]["requests"] == [
        {"method": "GET", "query": False, "hash": hash_, "codes": []}
    ]
    # Mutations go by POST, first by hash, then with the query.
    mutation = steps["mutation"]
    assert mutation["data"] == {**status, "alertLevel": "NONE", "version": 2}
    assert [(r["method"], r["query"], r["codes"]) for r in mutation["requests"]] == [
        ("POST", False, ["PERSISTED_QUERY_NOT_FOUND"]),
        ("POST", True, []),
    ]
    # Over graphql-ws the link sends the query with its hash; the server checks and runs it.
    subscription = steps["subscription"]
    assert subscription["data"] == mutation["data"]
    (sent,) = subscription["requests"]
    assert sent["query"] is True
    assert len(sent["hash"]) == 64
