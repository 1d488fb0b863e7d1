"""The executable schema."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError, MiddlewareManager
from strawberry.extensions import (
    DisableIntrospection,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from .errors import add_codes, mask_internal
from .limits import limit_extensions
from .multiplex import MultiplexedExecutionContext
from .mutations import Mutation
from .operation_choice import OperationChoice
from .permissions import check_every_root_field_guarded
from .queries import Query
from .scalars import DateTime
from .settings import Settings
from .subscriptions import Subscription

__all__ = ["create_schema", "schema_sdl"]

# Distinct operation texts kept parsed and validated.
DOCUMENT_CACHE_SIZE = 1024
# Resolvers unwrapped: what graphql-core's executor does with no middleware.
_NO_MIDDLEWARE = MiddlewareManager()


class _ParserCache(ParserCache):
    """ParserCache that leaves syntax errors to Strawberry's own parse step.

    ``ParserCache.on_parse`` raises a syntax error (or ``MAX_TOKENS``) from the
    hook itself, outside the step that turns it into a result: over HTTP that
    still ends as an error result, but over WebSocket the operation died without
    an answer. Here the document stays unparsed, Strawberry parses it again and
    reports the error (graphql-transport-ws closes with 4400).
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


class _ExecutionContext(MultiplexedExecutionContext):
    """Gives each subscription event its own subfield memo (and shares live events' results,
    see :mod:`gql.multiplex`).

    graphql-core 3.3 builds the executor of each subscription event as a shallow
    ``copy`` of the subscription's executor, so they all share one
    ``_relevant_sub_fields`` dict. It is keyed by ``id()`` of the field lists
    that each event collects anew, and keeps those lists alive, so it gained an
    entry (about 1.5 KB) per delivered event for the life of the subscription.
    The memo is private to graphql-core, which is pinned to 3.3.x for this.
    """

    def build_per_event_executor(self, payload: Any) -> Any:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor


class Schema(strawberry.Schema):
    """Every error gets ``extensions.code`` (see :mod:`gql.errors`); only internal ones are logged.

    ``process_errors`` is the one hook Strawberry runs for every result with
    errors, over HTTP and WebSocket, before the result is sent. With ``mask``
    (production) internal errors are replaced there by ``Internal error`` and a
    correlation id, and logged under that id.
    """

    def __init__(self, *args: Any, mask: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mask = mask

    def _get_middleware_manager(self, extensions: list[SchemaExtension]) -> MiddlewareManager:
        """Strawberry's per-request manager of the extensions that wrap resolvers; one shared
        empty manager when none does (the usual case: it keeps no per-request state)."""
        if any(extension._implements_resolve() for extension in extensions):
            return super()._get_middleware_manager(extensions)
        return _NO_MIDDLEWARE

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        internal = add_codes(errors)
        if self.mask:
            mask_internal(errors)
        elif internal:
            super().process_errors(internal, execution_context)


def create_schema(
    settings: Settings | None = None, *, extensions: Sequence[Callable[[], SchemaExtension]] = ()
) -> Schema:
    """Build the schema for ``settings`` (default: every setting at its default, not the env).

    Extensions are classes or factories: one instance per operation (``extensions``
    are added first: metrics and tracing, which time the whole operation). The
    document limits always apply; production also turns off introspection and
    field suggestions and masks internal errors.

    Raises:
        TypeError: a root field has no :class:`gql.permissions.Authorize` rule.
    """
    settings = settings or Settings.model_construct()
    check_every_root_field_guarded((Query, Mutation, Subscription))
    all_extensions: list[Callable[[], SchemaExtension]] = [
        *extensions,
        # Parsing and validating dominate the cost of a small operation; both
        # caches are process-wide LRUs shared by these per-operation instances.
        lambda: _ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        OperationChoice,
        *limit_extensions(settings),
    ]
    if settings.production:
        all_extensions.append(DisableIntrospection)
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(
            scalar_map={datetime: DateTime}, disable_field_suggestions=settings.production
        ),
        extensions=all_extensions,
        mask=settings.production,
        execution_context_class=_ExecutionContext,
    )


def schema_sdl() -> str:
    """The schema in SDL, as committed in ``schema.graphql``."""
    return strawberry.Schema.as_str(create_schema()) + "\n"
