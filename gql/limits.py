"""Abuse limits on GraphQL documents (the HTTP body size is :mod:`gql.body_limit`'s).

* :func:`limit_extensions`: schema extensions (as zero-argument factories, so
  each operation gets fresh instances) for depth, aliases, tokens and cost.
* :class:`CostLimiter`: refuses an operation over ``MAX_QUERY_COST`` by the
  cost model of :mod:`gql.cost` (fields weighted by the size they may return,
  lists multiplied by ``first``), computed on the coerced variable values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    SchemaExtension,
)

from .cost import coerced_variables, operation_cost
from .document_limits import aliases_rule, depth_rule
from .settings import SecuritySettings

__all__ = ["CostLimiter", "limit_extensions"]


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
        self, schema: GraphQLSchema, document: DocumentNode, variables: object
    ) -> GraphQLError | None:
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            coerced = coerced_variables(schema, definition, variables)
            if coerced is None:
                continue  # invalid variables: execution refuses them with BAD_USER_INPUT
            total = operation_cost(schema, definition, fragments, coerced)
            if total > self.max_cost:
                name = definition.name.value if definition.name else "anonymous"
                return GraphQLError(
                    f"operation '{name}' costs {total}, over MAX_QUERY_COST={self.max_cost}: "
                    "ask for fewer items (first) or fewer fields (metadata weighs 16)",
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
    rules: list[type[ASTValidationRule]] = [
        depth_rule(settings.max_query_depth),
        aliases_rule(settings.max_aliases),
    ]
    return [
        functools.partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        functools.partial(AddValidationRules, rules),
        functools.partial(CostLimiter, max_cost=settings.max_query_cost),
    ]
