"""GetOperation of the GraphQL spec (section 6.1): several operations need an ``operationName``.

Strawberry runs the first operation of a document when no ``operationName``
is given, whatever follows it; the spec requires a request error instead, so
a client that forgot the name learns it before anything runs (a mutation
among the operations would otherwise run unasked). The error is
``BAD_REQUEST``, as for an unknown ``operationName``: the operation to run
cannot be determined.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from .codes import ErrorCode

__all__ = ["MULTIPLE_OPERATIONS_MESSAGE", "OperationChoice"]

MULTIPLE_OPERATIONS_MESSAGE = (
    "The document has several operations: name the one to run in operationName"
)


class OperationChoice(SchemaExtension):
    """Refuses a document of several operations sent without ``operationName``.

    List it after ``ValidationCache``: its error joins the (cached) validation
    errors without being cached itself, since the same document with an
    ``operationName`` is fine. Nothing of the document runs.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # ``operation_name`` falls back to the first operation's name; only what the
        # request gave counts (an InitVar, kept under this name).
        provided = getattr(context, "_provided_operation_name", None)
        if document is not None and provided in (None, ""):
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) > 1:
                error = GraphQLError(
                    MULTIPLE_OPERATIONS_MESSAGE,
                    operations,
                    extensions={"code": ErrorCode.BAD_REQUEST},
                )
                context.pre_execution_errors = [*(context.pre_execution_errors or ()), error]
        yield
