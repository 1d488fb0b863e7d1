"""The cost of an operation: an estimate of its work and of its response size.

Each selected field costs its weight: 1, or for a field whose value may be
large, the KiB its documented limit allows (:data:`TYPE_WEIGHTS`,
:data:`FIELD_WEIGHTS`: ``metadata`` 16, ``description`` 2). A field with a
``first`` argument (or the argument :data:`COUNT_ARGUMENTS` names, such as
``dashboard``'s ``activities``) multiplies the cost of what is selected under
it by its value: its literal, its variable's coerced value (``100.0`` is the Int
100), else the variable's or the argument's default. So the cost is roughly
the response's worst size in KiB; the escaping of non-ASCII characters can
make it larger, which ``MAX_RESPONSE_BYTES`` (:mod:`gql.response_size`) bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableValues,
    get_argument_values,
    get_named_type,
    get_variable_values,
)
from graphql.language import OperationType as AstOperationType

from db.validation import DESCRIPTION_MAX_CHARS, METADATA_MAX_BYTES

__all__ = [
    "COUNT_ARGUMENTS",
    "FIELD_WEIGHTS",
    "TYPE_WEIGHTS",
    "coerced_variables",
    "operation_cost",
]

COST_UNIT_BYTES = 1024


def _kib(limit: int) -> int:
    return max(1, math.ceil(limit / COST_UNIT_BYTES))


TYPE_WEIGHTS: Mapping[str, int] = {"JSON": _kib(METADATA_MAX_BYTES)}
"""Weight of every field of these (named) types."""
FIELD_WEIGHTS: Mapping[tuple[str, str], int] = {
    ("Activity", "description"): _kib(DESCRIPTION_MAX_CHARS),
}
"""Weight of these fields, by (parent type, field name)."""
COUNT_ARGUMENTS: Mapping[tuple[str, str], str] = {("Subscription", "dashboard"): "activities"}
"""Fields whose list size another argument than ``first`` bounds, by (parent type, field name)."""


def coerced_variables(
    schema: GraphQLSchema, operation: OperationDefinitionNode, inputs: object
) -> VariableValues | None:
    """``inputs`` coerced as execution will coerce them (spec 6.1.2), defaults included.

    Returns ``None`` when they are invalid: execution then refuses the
    operation with ``BAD_USER_INPUT`` before anything runs.
    """
    if not isinstance(inputs, dict):
        return None
    values = get_variable_values(schema, operation.variable_definitions or (), inputs)
    return None if isinstance(values, list) else values


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: VariableValues,
) -> int:
    """The cost of ``operation`` (see the module docstring); fragment cycles count once.

    Args:
        variables: the *coerced* variable values (:func:`coerced_variables`).
    """
    root = {
        AstOperationType.QUERY: schema.query_type,
        AstOperationType.MUTATION: schema.mutation_type,
        AstOperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    memo: dict[str, int] = {}

    def cost(
        selections: SelectionSetNode, parent: GraphQLNamedType | None, seen: frozenset[str]
    ) -> int:
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += _field_cost(
                    selection, parent, variables, lambda inner, of: cost(inner, of, seen)
                )
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = schema.get_type(condition.name.value) if condition else parent
                total += cost(selection.selection_set, target, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None or name in seen:
                    continue
                if name not in memo:
                    target = schema.get_type(fragment.type_condition.name.value)
                    memo[name] = cost(fragment.selection_set, target, seen | {name})
                total += memo[name]
        return total

    return cost(operation.selection_set, root, frozenset())


def _field_cost(
    node: FieldNode,
    parent: GraphQLNamedType | None,
    variables: VariableValues,
    cost: Callable[[SelectionSetNode, GraphQLNamedType], int],
) -> int:
    if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return 1  # __typename on a union, or an unknown type: validation decides
    field = parent.fields.get(node.name.value)
    if field is None:
        return 1  # __typename, or an unknown field that validation refuses
    named = get_named_type(field.type)
    if node.selection_set is None:
        weight = FIELD_WEIGHTS.get((parent.name, node.name.value))
        return weight if weight is not None else TYPE_WEIGHTS.get(named.name, 1)
    count = COUNT_ARGUMENTS.get((parent.name, node.name.value), "first")
    return 1 + _first(node, field, variables, count) * cost(node.selection_set, named)


def _first(
    node: FieldNode, field: GraphQLField, variables: VariableValues, name: str = "first"
) -> int:
    """The coerced value of the field's ``first`` (or ``name``) argument, or 1 if it has none."""
    if name not in field.args:
        return 1
    try:
        arguments = get_argument_values(field, node, variables)
    except GraphQLError:
        return 1  # an invalid literal: validation refuses the document
    value = arguments.get(field.args[name].out_name or name)
    return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else 1
