"""Every error gets an ``extensions.code`` (:class:`gql.codes.ErrorCode`); internal ones are masked.

:func:`add_codes` classifies what Strawberry and graphql-core raise:
``GRAPHQL_PARSE_FAILED`` (spec section 2), ``GRAPHQL_VALIDATION_FAILED`` (spec
section 5), ``BAD_USER_INPUT`` for variable coercion (spec section 6.1.2,
CoerceVariableValues) with ``extensions.field`` naming the argument path, e.g.
``input.description``, ``BAD_REQUEST`` for no query, an unknown
``operationName`` or an operation type the transport does not carry (e.g. a
query over legacy graphql-ws), ``SERVICE_UNAVAILABLE`` when the database or
the broker could not be reached (:func:`unavailable`; the client retries later),
and ``INTERNAL_SERVER_ERROR`` for anything else.
In production (``ENV=production``) :func:`mask_internal` replaces an internal
error's message with ``Internal error`` and adds ``extensions.correlationId``,
the id of the log line holding the real message and stack trace.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from graphql import (
    ArgumentNode,
    GraphQLError,
    ListValueNode,
    ObjectValueNode,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    parse,
    visit,
)
from sqlalchemy import exc as sa_exc
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.utils.str_converters import to_camel_case

from db import InvalidInput
from sync import ChannelDisconnected

from .codes import ErrorCode
from .cursors import InvalidCursor

__all__ = [
    "RETRY_AFTER_SECONDS",
    "UNAVAILABLE_MESSAGE",
    "BadUserInput",
    "add_codes",
    "mask_internal",
    "unavailable",
    "unavailable_only",
    "user_input",
]

INTERNAL_ERROR_MESSAGE = "Internal error"
UNAVAILABLE_MESSAGE = "Service unavailable: the database or broker is unreachable; retry later"
#: What a whole-request ``SERVICE_UNAVAILABLE`` (HTTP 503) puts in ``Retry-After``.
RETRY_AFTER_SECONDS = 2

logger = logging.getLogger(__name__)


class BadUserInput(GraphQLError):
    """An argument breaks a documented limit. ``extensions``: ``code``, ``field``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(
            f"{field} {reason}", extensions={"code": ErrorCode.BAD_USER_INPUT, "field": field}
        )


@contextmanager
def user_input(prefix: str = "") -> Iterator[None]:
    """Turn :class:`db.InvalidInput` and :class:`InvalidCursor` into :class:`BadUserInput`.

    Args:
        prefix: the argument the offending field sits in, e.g. ``"input"``.
    """
    try:
        yield
    except InvalidInput as exc:
        name = to_camel_case(exc.field)
        raise BadUserInput(f"{prefix}.{name}" if prefix else name, exc.reason) from None
    except InvalidCursor as exc:
        raise BadUserInput("after", str(exc)) from None


_REQUEST_ERRORS = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)


def _outage_types() -> tuple[type[BaseException], ...]:
    # OSError covers refused and reset connections, DNS failures and socket
    # timeouts; SQLAlchemy raises OperationalError and InterfaceError for lost
    # and refused database connections, and TimeoutError when the pool is dry.
    types: list[type[BaseException]] = [
        OSError,
        ChannelDisconnected,
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.DisconnectionError,
        sa_exc.TimeoutError,
    ]
    try:
        import asyncpg
    except ImportError:  # the postgres extra is optional
        return tuple(types)
    return (
        *types,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,  # "connection is closed"
        asyncpg.OperatorInterventionError,  # shutting down, starting up
        asyncpg.TooManyConnectionsError,
    )


_OUTAGES = _outage_types()


def unavailable(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it wraps) says a service we need could not be reached.

    Looks through ``__cause__``/``__context__`` and the DBAPI error a
    SQLAlchemy error wraps, so the driver's own connection errors count too.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, _OUTAGES):
            return True
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        error = error.__cause__ or error.__context__
    return False


def _classify(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, GraphQLError) and original.extensions:
        code = original.extensions.get("code")
        if isinstance(code, str):
            return code
    if error.path is None and _COERCION.match(error.message):
        # Variable coercion failures (spec 6.1.2): wrong type, bad scalar value, missing.
        return ErrorCode.BAD_USER_INPUT
    if error.path is None and error.nodes and not isinstance(original, GraphQLError):
        # Points into the document before execution.
        if error.message.startswith("Syntax Error"):
            return ErrorCode.GRAPHQL_PARSE_FAILED
        if _is_literal_value(error):
            # An argument's literal value is wrong (ValuesOfCorrectTypeRule, which keeps
            # a scalar's ValueError): the same mistake as that value in a variable,
            # so the same code.
            return ErrorCode.BAD_USER_INPUT
        return ErrorCode.GRAPHQL_VALIDATION_FAILED
    if isinstance(original, _REQUEST_ERRORS):
        # No query, an unknown operationName, or an operation type the transport refuses
        # (HTTP answers these with 400; over WebSocket they are the operation's error).
        return ErrorCode.BAD_REQUEST
    if original is not None:
        if unavailable(original):
            return ErrorCode.SERVICE_UNAVAILABLE
        return ErrorCode.INTERNAL_SERVER_ERROR
    if error.message.startswith("Syntax Error"):
        return ErrorCode.GRAPHQL_PARSE_FAILED
    if error.path is None:
        return ErrorCode.GRAPHQL_VALIDATION_FAILED
    return ErrorCode.INTERNAL_SERVER_ERROR


_VARIABLE_PATH = re.compile(r"^Variable '\$(\w+)' (?:has|got) invalid value(?: at ([.\w\[\]]+))?")
# What CoerceVariableValues reports (graphql-core's wording); other messages about a
# variable ("is not defined", "is never used", "used in position expecting") are
# validation rules.
_COERCION = re.compile(
    r"^Variable '\$\w+' (?:(?:has|got) invalid value|of required type .* was not provided"
    r"|of non-null type .* must not be null)",
    re.DOTALL,
)


def _is_literal_value(error: GraphQLError) -> bool:
    """Whether ``error`` is about a value written in the document (not a ``$variable``)."""
    node = error.nodes[0] if error.nodes else None
    return isinstance(node, ValueNode) and not isinstance(node, VariableNode)


class _ValueRoots(Visitor):
    """The values an argument or a variable's default sets, by the name that holds them."""

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[tuple[str, ValueNode]] = []

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self.roots.append((node.name.value, node.value))

    def enter_variable_definition(self, node: VariableDefinitionNode, *_args: Any) -> None:
        if node.default_value is not None:
            self.roots.append((node.variable.name.value, node.default_value))


def _value_path(value: ValueNode, start: int, path: str) -> str | None:
    if value.loc is not None and value.loc.start == start:
        return path
    if isinstance(value, ObjectValueNode):
        for field in value.fields:
            found = _value_path(field.value, start, f"{path}.{field.name.value}")
            if found is not None:
                return found
    elif isinstance(value, ListValueNode):
        for index, item in enumerate(value.values):
            found = _value_path(item, start, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _literal_field(error: GraphQLError) -> str | None:
    """The argument path of a literal value, e.g. ``input.timestamp``, found in the document.

    Validation errors carry the value's node but not where it sits, so the
    source is parsed again (once per cached error: its code is kept with it).
    """
    node = error.nodes[0] if error.nodes else None
    if node is None or node.loc is None or error.source is None:
        return None
    try:
        document = parse(error.source)
    except GraphQLError:
        return None
    roots = _ValueRoots()
    visit(document, roots)
    for name, value in roots.roots:
        found = _value_path(value, node.loc.start, name)
        if found is not None:
            return found
    return None


def _scalar_reason(error: GraphQLError) -> str | None:
    """The message of the exception a scalar raised under ``error``, if one did."""
    cause: BaseException | None = error.original_error
    while isinstance(cause, GraphQLError):
        cause = cause.original_error
    return str(cause) if cause is not None else None


def _variable_field(message: str) -> str | None:
    """The argument path (``input.timestamp``) named by a variable coercion message."""
    match = _VARIABLE_PATH.match(message)
    if match is None:
        return None
    return match.group(1) + (match.group(2) or "")


def _with_code(errors: list[GraphQLError]) -> None:
    for error in errors:
        extensions: dict[str, Any] = dict(error.extensions or {})
        if "code" not in extensions:
            extensions["code"] = _classify(error)
            if extensions["code"] == ErrorCode.BAD_USER_INPUT:
                field = _variable_field(error.message)
                if field is None and _is_literal_value(error):
                    field = _literal_field(error)
                if field is not None:
                    extensions["field"] = field
                    # One clean message for a scalar's refusal, literal or variable alike,
                    # instead of graphql-core's "Expected value of type ..., but
                    # encountered error '...'; found: ..." around it.
                    if (reason := _scalar_reason(error)) is not None:
                        error.message = f"{field}: {reason}"
            error.extensions = extensions


def add_codes(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Give every error an ``extensions.code``; return those that are internal errors."""
    _with_code(errors)
    return [
        e for e in errors if (e.extensions or {}).get("code") == ErrorCode.INTERNAL_SERVER_ERROR
    ]


def unavailable_only(data: dict[str, Any] | None, errors: list[GraphQLError] | None) -> bool:
    """Whether a result failed as a whole because a service was unreachable.

    True when there are errors, every one is ``SERVICE_UNAVAILABLE`` and no
    root field has a value: the request as a whole may be retried (HTTP 503).
    """
    if not errors:
        return False
    if any((e.extensions or {}).get("code") != ErrorCode.SERVICE_UNAVAILABLE for e in errors):
        return False
    return data is None or all(value is None for value in data.values())


_SUGGESTION = re.compile(r"\s*Did you mean .*\?$", re.DOTALL)


def mask_internal(errors: list[GraphQLError]) -> None:
    """Production: replace internal errors in place and drop "Did you mean" suggestions.

    Call after :func:`add_codes`. An ``INTERNAL_SERVER_ERROR`` becomes
    ``Internal error`` with ``extensions.correlationId``; its message and stack
    trace are logged at ERROR under that id. A ``SERVICE_UNAVAILABLE`` gets a
    fixed message (the driver's would name hosts and ports) and is logged at
    WARNING without a trace: it is an outage, not a bug. Every other message is
    kept, minus suggestions, which would list the schema's names with
    introspection off.
    """
    for index, error in enumerate(errors):
        extensions = error.extensions or {}
        code = extensions.get("code")
        if code == ErrorCode.INTERNAL_SERVER_ERROR:
            if "correlationId" not in extensions:
                errors[index] = _masked(error)
        elif code == ErrorCode.SERVICE_UNAVAILABLE and error.original_error is not None:
            logger.warning("service unavailable at %s: %s", error.path, error.message)
            errors[index] = GraphQLError(
                UNAVAILABLE_MESSAGE, nodes=error.nodes, path=error.path, extensions=extensions
            )
        elif "Did you mean" in error.message:
            error.message = _SUGGESTION.sub("", error.message)


def _masked(error: GraphQLError) -> GraphQLError:
    correlation_id = uuid.uuid4().hex[:16]
    cause = error.original_error or error
    logger.error(
        "internal error %s at %s: %s",
        correlation_id,
        error.path,
        error.message,
        exc_info=(type(cause), cause, cause.__traceback__),
    )
    return GraphQLError(
        INTERNAL_ERROR_MESSAGE,
        nodes=error.nodes,
        path=error.path,
        extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR, "correlationId": correlation_id},
    )
