"""Abuse limits on GraphQL documents (the HTTP body size is :mod:`gql.body_limit`'s).

* :func:`limit_extensions`: schema extensions (as zero-argument factories, so
  each operation gets fresh instances) for depth, aliases, tokens and cost.
* :class:`CostLimiter`: a simple cost model. Each selected field costs 1, and
  a field with a ``first`` argument multiplies the cost of what is selected
  under it by ``first`` (its literal or variable value, else its default).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
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
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from graphql.language import OperationType as AstOperationType
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from .settings import SecuritySettings

__all__ = ["CostLimiter", "limit_extensions", "operation_cost"]


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    """The cost of ``operation``: see the module docstring. Fragment cycles count once."""
    root = {
        AstOperationType.QUERY: schema.query_type,
        AstOperationType.MUTATION: schema.mutation_type,
        AstOperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    defaults = {
        d.variable.name.value: d.default_value for d in operation.variable_definitions or ()
    }
    memo: dict[str, int] = {}

    def first_of(node: FieldNode, field: GraphQLField | None) -> int:
        if field is None or "first" not in field.args:
            return 1
        value: Any = field.args["first"].default_value
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            literal = argument.value
            if isinstance(literal, IntValueNode):
                value = int(literal.value)
            elif isinstance(literal, VariableNode):
                name = literal.name.value
                if name in variables:
                    value = variables[name]
                elif isinstance(defaults.get(name), IntValueNode):
                    value = int(defaults[name].value)  # type: ignore[union-attr]
        return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else 1

    def cost(
        selections: SelectionSetNode, parent: GraphQLNamedType | None, seen: frozenset[str]
    ) -> int:
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                field = None
                if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
                    field = parent.fields.get(selection.name.value)
                inner = 0
                if selection.selection_set is not None:
                    child = get_named_type(field.type) if field is not None else None
                    inner = cost(selection.selection_set, child, seen)
                total += 1 + first_of(selection, field) * inner
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


class CostLimiter(SchemaExtension):
    """Refuses an operation whose :func:`operation_cost` exceeds ``max_cost``.

    The cost depends on variable values, so it is not a validation rule (the
    validation cache keys on the document alone); it runs as validation starts,
    after the document is parsed, and adds its error to the validation errors.
    """

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            error = self._check(context.schema._schema, document, context.variables or {})
            if error is not None:
                # A new list: the cached validation result must not be changed.
                context.pre_execution_errors = [*(context.pre_execution_errors or ()), error]
        yield

    def _check(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]
    ) -> GraphQLError | None:
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            total = operation_cost(schema, definition, fragments, variables)
            if total > self.max_cost:
                name = definition.name.value if definition.name else "anonymous"
                return GraphQLError(
                    f"operation '{name}' costs {total}, over the limit of {self.max_cost}: "
                    "ask for fewer items (first) or fewer fields",
                    definition,
                )
        return None


def limit_extensions(settings: SecuritySettings) -> list[Callable[[], SchemaExtension]]:
    """Factories for the document limits: ``MAX_TOKENS`` (counted while parsing),
    ``MAX_QUERY_DEPTH`` and ``MAX_ALIASES`` (validation rules) and ``MAX_QUERY_COST``.

    The validation rule classes are built here once, so the validation cache,
    which keys on them, keeps hitting across operations. List these after a
    ``ValidationCache`` so that the cost error joins the cached validation result.
    """
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    return [
        functools.partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        functools.partial(AddValidationRules, rules),
        functools.partial(CostLimiter, max_cost=settings.max_query_cost),
    ]
