"""CostLimiter's verdict cache (gql/limits.py): one costing per query text and variable values."""

from __future__ import annotations

from typing import Any

from gql.limits import COST_CACHE_MAX_VARIABLES, CostCache

from .conftest import GraphQLClient

# 1 + n * 18 for each alias: with n = 100 over the default MAX_QUERY_COST (5,000).
PAGE = "recentActivities(userId: $u, first: $n) { edges { node { metadata } } }"
QUERY = f"query($u: String!, $n: Int) {{ a: {PAGE} b: {PAGE} c: {PAGE} }}"


async def test_variables_decide_the_cached_verdict(graphql: GraphQLClient) -> None:
    over: list[dict[str, Any]] = []
    for _ in range(3):
        body = await graphql(QUERY, {"u": "u1", "n": 100})
        assert "data" in body and body["data"] is None, body
        (error,) = body["errors"]
        assert "over MAX_QUERY_COST" in error["message"], error
        over.append(error)
        # Same text, other values: costed on their own, not given the verdict above.
        assert (await graphql.data(QUERY, {"u": "u1", "n": 1})) == {
            alias: {"edges": []} for alias in "abc"
        }
    assert over[0] == over[1] == over[2]


def test_the_cache_is_bounded() -> None:
    cache = CostCache(maxsize=2)
    keys = [CostCache.key(f"q{i}", {}) for i in range(3)]
    for key in keys:
        assert key is not None
        cache.put(key, None)
    found = [cache.get(key)[0] for key in keys if key is not None]
    assert found == [False, True, True]


def test_large_or_unencodable_variables_are_not_kept() -> None:
    assert CostCache.key("q", {"v": "x" * COST_CACHE_MAX_VARIABLES}) is None
    assert CostCache.key("q", {"v": {1, 2}}) is None
    assert CostCache.key("q", {"b": 1, "a": 2}) == CostCache.key("q", {"a": 2, "b": 1})
    assert CostCache.key("q", {"n": 1}) != CostCache.key("q", {"n": 1.0})
