"""The executable schema."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.schema.config import StrawberryConfig

from .errors import ErrorCodes
from .mutations import Mutation
from .queries import Query
from .scalars import DateTime
from .subscriptions import Subscription

__all__ = ["create_schema", "schema_sdl"]


def create_schema() -> strawberry.Schema:
    """Build the schema. Extensions are passed as classes: one instance per operation."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={datetime: DateTime}),
        extensions=[ErrorCodes],
    )


def schema_sdl() -> str:
    """The schema in SDL, as committed in ``schema.graphql``."""
    return strawberry.Schema.as_str(create_schema()) + "\n"
