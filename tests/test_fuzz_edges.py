"""Fuzzing the edges of input values: nesting, number ranges and cursors are refused by code.

Where ``tests/test_fuzz.py`` generates whole operations, this generates the
values that once crashed the server: metadata nested hundreds of levels deep,
integers of thousands of digits (as variables and as literals), cursors
carrying ids past 64 bits. Each value is judged by an oracle that restates the
documented limits: within them the request succeeds, outside them it is
``BAD_USER_INPUT``; never a 5xx or ``INTERNAL_SERVER_ERROR``.
"""

from __future__ import annotations

import base64
import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as fuzzing
from hypothesis import strategies as st

from .conftest import GraphQLClient

# The documented limits (README, docs/security.md), restated rather than imported.
METADATA_MAX_DEPTH = 32
METADATA_MAX_INT = 2**53 - 1
EXAMPLES = max(int(os.environ.get("FUZZ_EXAMPLES", "500")) // 5, 20)
ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { id } }"
RECENT = """query($u: String!, $first: Int, $after: String) {
  recentActivities(userId: $u, first: $first, after: $after) { edges { cursor } }
}"""

_numbers = st.one_of(
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.integers(2**53 - 3, 2**53 + 3),
    st.sampled_from([10**308, -(10**308), 10**400, 2**63, -(2**63) - 1]),
    st.floats(),
)


@st.composite
def _nested(draw: st.DrawFn) -> dict[str, Any]:
    # Deeper values (900 levels) are in tests/test_bad_input.py: hypothesis
    # itself cannot print an example that deep.
    depth = draw(st.integers(1, 60) | st.sampled_from([31, 32, 33, 120]))
    leaf: Any = draw(_numbers | st.text(max_size=4))
    for _ in range(depth - 1):
        leaf = {"a": leaf} if draw(st.booleans()) else [leaf]
    return leaf if isinstance(leaf, dict) else {"a": leaf}


def _deep(levels: int, leaf: Any) -> dict[str, Any]:
    value: Any = leaf
    for _ in range(levels - 1):
        value = {"a": value}
    return value if isinstance(value, dict) else {"a": value}


def _check(body: dict[str, Any], *, valid: bool) -> None:
    """Within the documented limits the write or read succeeds; outside, it is BAD_USER_INPUT."""
    errors = body.get("errors") or []
    if valid:
        assert not errors, errors
        return
    [error] = errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error


def _within_limits(value: Any, depth: int = 1) -> bool:
    """The documented metadata rules (db.validation), restated independently."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) <= METADATA_MAX_INT
    if isinstance(value, float):
        return math.isfinite(value)
    if depth > METADATA_MAX_DEPTH:
        return False
    if isinstance(value, dict) and not all(_storable_text(str(key)) for key in value):
        return False
    items = value.values() if isinstance(value, dict) else value
    return all(_within_limits(item, depth + 1) for item in items)


def _storable_text(text: str) -> bool:
    """Text PostgreSQL can hold: no NUL, and no lone UTF-16 surrogate (not UTF-8)."""
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


_SETTINGS = fuzzing(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def settings(settings: Any) -> Any:
    return settings.model_copy(update={"write_wait": 0})


@_SETTINGS
@given(metadata=_nested())
# The values that once crashed the server are always tried.
@example(metadata=_deep(120, 1))
@example(metadata=_deep(33, 1))
@example(metadata={"n": 10**400})
@example(metadata={"n": [2**63]})
@example(metadata={"a": "\x00"})
@example(metadata={"\x00": 1})
async def test_metadata_of_any_depth_and_number_is_stored_or_bad_input(
    graphql: GraphQLClient, metadata: dict[str, Any]
) -> None:
    body = await graphql(ADD, {"input": {"userId": "u1", "type": "note", "metadata": metadata}})
    _check(body, valid=_within_limits(metadata))


@_SETTINGS
@given(digits=st.integers(1, 6000), sign=st.sampled_from(["", "-"]), fraction=st.booleans())
@example(digits=4301, sign="", fraction=False)
async def test_number_literals_of_any_length_are_stored_or_bad_input(
    graphql: GraphQLClient, digits: int, sign: str, fraction: bool
) -> None:
    number = sign + "9" * digits + (".5" if fraction else "")
    literal = '{userId: "u1", type: "note", metadata: {n: ' + number + "}}"
    # GraphQL reads a literal with a fraction as a float: finite up to ~1.8e308.
    valid = digits <= 308 if fraction else digits <= len(str(METADATA_MAX_INT)) - 1
    body = await graphql("mutation { addActivity(input: " + literal + ") { id } }")
    _check(body, valid=valid)


@_SETTINGS
@given(
    stamp=st.sampled_from(["2026-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "x"]),
    ident=st.integers(-(2**70), 2**70).map(str)
    | st.text(max_size=8)
    | st.sampled_from(["+1", "1_0", "\u0661", " 1", "01"]),
    first=st.integers(-5, 200) | st.none(),
)
@example(stamp="2026-01-01T00:00:00+00:00", ident=str(2**63), first=100)
async def test_cursors_of_any_id_are_answered_or_bad_input(
    graphql: GraphQLClient, stamp: str, ident: str, first: int | None
) -> None:
    cursor = base64.urlsafe_b64encode(f"a1:{stamp}|{ident}".encode()).decode().rstrip("=")
    valid = (
        stamp != "x"
        and ident.isascii()
        and ident.isdigit()
        and 0 < int(ident) < 2**63
        and (first is None or 1 <= first <= 100)
    )
    _check(await graphql(RECENT, {"u": "u1", "first": first, "after": cursor}), valid=valid)
