"""MAX_QUERY_DEPTH and MAX_ALIASES count each fragment once (gql/document_limits.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse
from strawberry.extensions.max_aliases import count_fields_with_alias

from gql.document_limits import alias_count, operation_depth

from .conftest import GraphQLClient

DOCUMENTS = [
    '{ userStatus(userId: "u") { alertLevel } }',
    '{ a: userStatus(userId: "u") { b: alertLevel } c: __typename }',
    '{ recentActivities(userId: "u") { edges { node { id } } pageInfo { hasNextPage } } }',
    '{ ...F } fragment F on Query { x: userStatus(userId: "u") { ...G } } '
    "fragment G on UserStatus { y: alertLevel z: version }",
    '{ ... on Query { a: userStatus(userId: "u") { ... on UserStatus { b: version } } } }',
    "{ __schema { types { fields { type { name } } } } }",
    '{ ...F ...F } fragment F on Query { a: recentActivities(userId: "u") '
    "{ edges { node { b: id } } } }",
]


def _doubling(levels: int) -> str:
    """Each fragment spreads the next twice: 2^levels paths, levels + 1 fragments."""
    fragments = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    return f"query {{ ...F0 }} {fragments} fragment F{levels} on Query {{ a: __typename }}"


def _parts(text: str) -> tuple[OperationDefinitionNode, dict[str, FragmentDefinitionNode]]:
    document = parse(text)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return operations[0], fragments


def _strawberry_depth(text: str) -> int:
    from graphql import GraphQLError, ValidationContext, build_schema
    from strawberry.extensions.query_depth_limiter import determine_depth

    operation, fragments = _parts(text)
    errors: list[GraphQLError] = []
    schema = build_schema("type Query { x: Int }")
    context = ValidationContext(schema, parse(text), None, errors.append)  # type: ignore[arg-type]
    return determine_depth(operation, fragments, 0, 10**6, context, "op", None)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_the_same_depth_and_aliases_as_the_rules_they_replace(text: str) -> None:
    operation, fragments = _parts(text)
    assert operation_depth(operation.selection_set, fragments) == _strawberry_depth(text)
    assert alias_count(operation.selection_set, fragments) == count_fields_with_alias(
        operation, fragments
    )


class CountingFragments(Mapping[str, FragmentDefinitionNode]):
    """The document's fragments, counting how often each is looked up."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self._fragments = fragments
        self.lookups = 0

    def __getitem__(self, name: str) -> FragmentDefinitionNode:
        self.lookups += 1
        return self._fragments[name]

    def get(self, name: str, default: object = None) -> FragmentDefinitionNode | None:  # type: ignore[override]
        self.lookups += 1
        return self._fragments.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._fragments)

    def __len__(self) -> int:
        return len(self._fragments)


def test_each_fragment_is_measured_once_however_often_it_is_spread() -> None:
    operation, fragments = _parts(_doubling(30))
    counting = CountingFragments(fragments)
    assert operation_depth(operation.selection_set, counting) == 0
    assert counting.lookups == 31
    counting.lookups = 0
    assert alias_count(operation.selection_set, counting) == 2**30
    assert counting.lookups == 31


async def test_a_doubling_document_is_refused_by_its_aliases(graphql: GraphQLClient) -> None:
    body = await graphql(_doubling(25))
    codes = [error["extensions"]["code"] for error in body["errors"]]
    assert "GRAPHQL_VALIDATION_FAILED" in codes
    assert any("aliases found" in error["message"] for error in body["errors"])
