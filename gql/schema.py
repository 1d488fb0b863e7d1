"""The executable schema."""

from __future__ import annotations

from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from .errors import add_codes
from .mutations import Mutation
from .queries import Query
from .scalars import DateTime
from .subscriptions import Subscription

__all__ = ["create_schema", "schema_sdl"]

# Distinct operation texts kept parsed and validated.
DOCUMENT_CACHE_SIZE = 1024


class Schema(strawberry.Schema):
    """Every error gets ``extensions.code`` (see :mod:`gql.errors`); only internal ones are logged.

    ``process_errors`` is the one hook Strawberry runs for every result with
    errors, over HTTP and WebSocket, before the result is sent.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        internal = add_codes(errors)
        if internal:
            super().process_errors(internal, execution_context)


def create_schema() -> Schema:
    """Build the schema. Extensions are classes or factories: one instance per operation."""
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={datetime: DateTime}),
        extensions=[
            # Parsing and validating dominate the cost of a small operation; both
            # caches are process-wide LRUs shared by these per-operation instances.
            lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
            lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        ],
    )


def schema_sdl() -> str:
    """The schema in SDL, as committed in ``schema.graphql``."""
    return strawberry.Schema.as_str(create_schema()) + "\n"
