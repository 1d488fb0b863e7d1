"""``MAX_QUERY_DEPTH`` and ``MAX_ALIASES`` as validation rules that count each fragment once.

Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` walk into a
fragment at every spread of it: a document of 20 fragments, each spreading the
next twice, makes them walk 2^20 paths, and a 700-byte request held the event
loop for seconds. These rules give the same verdicts and messages, with each
fragment's depth and alias count computed once and reused at every spread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

__all__ = ["alias_count", "aliases_rule", "depth_rule", "operation_depth"]


def _fragments(context: ValidationContext) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in context.document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


def _measure(
    selections: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    *,
    field: Callable[[FieldNode, Callable[[SelectionSetNode], int]], int],
    combine: Callable[[Iterable[int]], int],
) -> int:
    """Fold ``selections``: ``field`` values each field, ``combine`` joins a selection set's.

    A fragment is measured once (its value does not depend on where it is
    spread); a spread inside its own cycle counts 0 (validation refuses cycles).
    """
    memo: dict[str, int] = {}
    open_: set[str] = set()

    def measure(selection_set: SelectionSetNode) -> int:
        return combine(value(selection) for selection in selection_set.selections)

    def value(selection: SelectionNode) -> int:
        if isinstance(selection, FieldNode):
            return field(selection, measure)
        if isinstance(selection, InlineFragmentNode):
            return measure(selection.selection_set)
        if isinstance(selection, FragmentSpreadNode):
            return spread(selection.name.value)
        return 0

    def spread(name: str) -> int:
        if name in memo:
            return memo[name]
        fragment = fragments.get(name)
        if fragment is None or name in open_:
            return 0
        open_.add(name)
        memo[name] = measure(fragment.selection_set)
        open_.discard(name)
        return memo[name]

    return measure(selections)


def operation_depth(
    selections: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> int:
    """Fields with a selection set on the longest path down; introspection fields count 0."""

    def field(node: FieldNode, measure: Callable[[SelectionSetNode], int]) -> int:
        if node.name.value.startswith("__") or node.selection_set is None:
            return 0
        return 1 + measure(node.selection_set)

    return _measure(
        selections, fragments, field=field, combine=lambda values: max(values, default=0)
    )


def alias_count(
    selections: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> int:
    """Aliased fields, counting a fragment's aliases at each spread (measured once)."""

    def field(node: FieldNode, measure: Callable[[SelectionSetNode], int]) -> int:
        own = int(node.alias is not None)
        return own + (measure(node.selection_set) if node.selection_set is not None else 0)

    return _measure(selections, fragments, field=field, combine=sum)


def depth_rule(max_depth: int) -> type[ValidationRule]:
    """A rule refusing an operation deeper than ``max_depth`` (``MAX_QUERY_DEPTH``)."""

    class MaxDepthRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            fragments = _fragments(context)
            for definition in context.document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                if operation_depth(definition.selection_set, fragments) > max_depth:
                    name = definition.name.value if definition.name else "anonymous"
                    context.report_error(
                        GraphQLError(
                            f"'{name}' exceeds maximum operation depth of {max_depth}",
                            [definition],
                        )
                    )

    return MaxDepthRule


def aliases_rule(max_aliases: int) -> type[ValidationRule]:
    """A rule refusing a document with over ``max_aliases`` aliases (``MAX_ALIASES``)."""

    class MaxAliasesRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            fragments = _fragments(context)
            total = sum(
                alias_count(definition.selection_set, fragments)
                for definition in context.document.definitions
                if isinstance(definition, OperationDefinitionNode)
            )
            if total > max_aliases:
                context.report_error(GraphQLError(f"{total} aliases found. Allowed: {max_aliases}"))

    return MaxAliasesRule
