"""The executable schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import strawberry
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.schema.config import StrawberryConfig

from .errors import ErrorCodes, MaskedErrorCodes
from .limits import limit_extensions
from .mutations import Mutation
from .permissions import check_every_root_field_guarded
from .queries import Query
from .scalars import DateTime
from .settings import Settings
from .subscriptions import Subscription

__all__ = ["create_schema", "schema_sdl"]


def create_schema(settings: Settings | None = None) -> strawberry.Schema:
    """Build the schema for ``settings`` (default: every setting at its default, not the env).

    Extensions are passed as classes or zero-argument factories: one instance
    per operation. The document limits always apply; production also turns
    off introspection and field suggestions and masks internal errors.

    Raises:
        TypeError: a root field has no :class:`gql.permissions.Authorize` rule.
    """
    settings = settings or Settings.model_construct()
    check_every_root_field_guarded((Query, Mutation, Subscription))
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        *limit_extensions(settings)
    ]
    if settings.production:
        extensions += [DisableIntrospection, MaskedErrorCodes]
    else:
        extensions.append(ErrorCodes)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(
            scalar_map={datetime: DateTime}, disable_field_suggestions=settings.production
        ),
        extensions=extensions,
    )


def schema_sdl() -> str:
    """The schema in SDL, as committed in ``schema.graphql``."""
    return strawberry.Schema.as_str(create_schema()) + "\n"
