"""Abuse limits on GraphQL documents (the HTTP body size is :mod:`gql.body_limit`'s).

* :func:`limit_extensions`: schema extensions (as zero-argument factories, so
  each operation gets fresh instances) for depth, aliases, tokens and cost.
* :class:`CostLimiter`: refuses an operation over ``MAX_QUERY_COST`` by the
  cost model of :mod:`gql.cost` (fields weighted by the size they may return,
  lists multiplied by ``first``), computed on the coerced variable values.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
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

__all__ = ["CostCache", "CostLimiter", "limit_extensions"]

# Operations whose cost is kept, and the longest variable values (as JSON) kept
# in a key: a larger one is costed anew, so the cache holds at most about
# COST_CACHE_SIZE * (query + COST_CACHE_MAX_VARIABLES) bytes of keys.
COST_CACHE_SIZE = 1024
COST_CACHE_MAX_VARIABLES = 1024

# What a document costs with some variables: the operation over the limit and
# its cost, or None.
_Verdict = tuple[OperationDefinitionNode, int] | None


class CostCache:
    """The verdicts of :class:`CostLimiter` by (query text, variable values), an LRU.

    The cost depends on the document and the variable values only, and the
    same few operations are sent again and again with the same variables
    (``first: 20``, a user id): they are costed once.
    """

    def __init__(self, maxsize: int = COST_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._verdicts: OrderedDict[tuple[str, str], _Verdict] = OrderedDict()

    @staticmethod
    def key(query: str, variables: object) -> tuple[str, str] | None:
        """The key of ``query`` with ``variables``, or None when it is not kept."""
        try:
            text = json.dumps(variables, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            # Not kept: nested deeper than json can encode (metadata's own
            # depth limit refuses it later, with BAD_USER_INPUT).
            return None
        return (query, text) if len(text) <= COST_CACHE_MAX_VARIABLES else None

    def get(self, key: tuple[str, str]) -> tuple[bool, _Verdict]:
        """(found, verdict)."""
        if key not in self._verdicts:
            return False, None
        self._verdicts.move_to_end(key)
        return True, self._verdicts[key]

    def put(self, key: tuple[str, str], verdict: _Verdict) -> None:
        self._verdicts[key] = verdict
        if len(self._verdicts) > self.maxsize:
            self._verdicts.popitem(last=False)


class CostLimiter(SchemaExtension):
    """Refuses an operation whose :func:`operation_cost` exceeds ``max_cost``.

    The cost depends on variable values, so it is not a validation rule (the
    validation cache keys on the document alone); it runs as validation starts,
    after the document is parsed, and adds its error to the validation errors.
    """

    def __init__(self, max_cost: int, cache: CostCache | None = None) -> None:
        self.max_cost = max_cost
        self.cache = cache

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            variables = context.variables or {}
            cache, key = self.cache, None
            if cache is not None and context.query is not None:
                key = cache.key(context.query, variables)
            found, verdict = (False, None) if cache is None or key is None else cache.get(key)
            if not found:
                verdict = self._verdict(context.schema._schema, document, variables)
                if cache is not None and key is not None:
                    cache.put(key, verdict)
            error = None if verdict is None else self._error(*verdict)
            if error is not None:
                # A new list: the cached validation result must not be changed.
                context.pre_execution_errors = [*(context.pre_execution_errors or ()), error]
        yield

    def _error(self, definition: OperationDefinitionNode, total: int) -> GraphQLError:
        name = definition.name.value if definition.name else "anonymous"
        return GraphQLError(
            f"operation '{name}' costs {total}, over MAX_QUERY_COST={self.max_cost}: "
            "ask for fewer items (first) or fewer fields (metadata weighs 16)",
            definition,
        )

    def _verdict(
        self, schema: GraphQLSchema, document: DocumentNode, variables: object
    ) -> _Verdict:
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
                return definition, total
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
        functools.partial(CostLimiter, max_cost=settings.max_query_cost, cache=CostCache()),
    ]
