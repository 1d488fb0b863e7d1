"""gql/encoding.py writes exactly the text of json.dumps, whichever encoder it uses."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gql.encoding import dumps


def reference(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class Level(enum.StrEnum):
    HIGH = "HIGH"


class Rank(enum.IntEnum):
    ONE = 1


@dataclass
class Point:
    x: int


keys = st.one_of(st.text(max_size=8), st.integers(-5, 5))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.sampled_from(
        [
            "1e5",
            "2026-12-01T22:50:00.123456Z",
            1e-5,
            1e16,
            "\x7f",
            "é",
            "\ud83d",
            "\U0001f600",
            Level.HIGH,
            Rank.ONE,
        ]
    ),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=5),
    ),
    max_leaves=40,
)


@settings(max_examples=2000)
@given(values)
def test_text_is_that_of_json_dumps(value: object) -> None:
    assert dumps(value) == reference(value)


@pytest.mark.parametrize(
    "value",
    [1e16, 1e-5, 5e-324, 1.7976931348623157e308, -0.0, 0.1, {"a": [1e22, 2.5]}],
)
def test_floats_are_spelled_as_repr(value: object) -> None:
    assert dumps(value) == reference(value)


def test_what_json_refuses_is_refused() -> None:
    for value in (Point(1), {"s": {1, 2}}, b"bytes"):
        with pytest.raises(TypeError):
            reference(value)
        with pytest.raises(TypeError):
            dumps(value)


def test_a_circular_value_is_refused_as_json_refuses_it() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        dumps(loop)
