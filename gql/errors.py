"""Error codes in ``extensions.code``, named as Apollo Server and most GraphQL clients expect.

* ``GRAPHQL_PARSE_FAILED``: the document is not GraphQL (spec section 2).
* ``GRAPHQL_VALIDATION_FAILED``: the document breaks a validation rule (spec section 5).
* ``BAD_USER_INPUT``: a variable or argument value is invalid (spec section 6.1.2,
  CoerceVariableValues; or a limit of this API). ``extensions.field`` names the
  argument path, e.g. ``input.description``.
* ``INTERNAL_SERVER_ERROR``: anything else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.utils.str_converters import to_camel_case

from db import InvalidInput

from .cursors import InvalidCursor

__all__ = [
    "BAD_USER_INPUT",
    "INTERNAL_SERVER_ERROR",
    "BadUserInput",
    "ErrorCodes",
    "user_input",
]

BAD_USER_INPUT = "BAD_USER_INPUT"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class BadUserInput(GraphQLError):
    """An argument breaks a documented limit. ``extensions``: ``code``, ``field``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}", extensions={"code": BAD_USER_INPUT, "field": field})


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


def _classify(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, GraphQLError) and original.extensions:
        code = original.extensions.get("code")
        if isinstance(code, str):
            return code
    if error.path is None and error.message.startswith("Variable '$"):
        # Variable coercion failures (spec 6.1.2): wrong type, bad scalar value, missing.
        return BAD_USER_INPUT
    if original is not None:
        return INTERNAL_SERVER_ERROR
    if error.message.startswith("Syntax Error"):
        return PARSE_FAILED
    if error.path is None:
        return VALIDATION_FAILED
    return INTERNAL_SERVER_ERROR


_VARIABLE_PATH = re.compile(r"^Variable '\$(\w+)' (?:has|got) invalid value(?: at ([.\w\[\]]+))?")


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
            if extensions["code"] == BAD_USER_INPUT and (field := _variable_field(error.message)):
                extensions["field"] = field
            error.extensions = extensions


class ErrorCodes(SchemaExtension):
    """Adds ``extensions.code`` to every error of a result that lacks one."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors:
            _with_code(errors)
        if self.execution_context.pre_execution_errors:
            _with_code(self.execution_context.pre_execution_errors)
