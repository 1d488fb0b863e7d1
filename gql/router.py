"""The /graphql endpoint: Strawberry's FastAPI router with authentication and limits.

* HTTP: GET may run queries, never mutations (405 with ``Allow: POST``); POST runs
  queries and mutations; subscriptions are refused (400) as they need a socket.
  A body that is not a JSON object or array gets 400.
* WebSocket: ``connection_init`` must carry ``{"authorization": "Bearer <token>"}``
  unless the service runs in dev mode; otherwise the socket closes with 4403.
  Cross-origin handshakes are refused (HTTP 403) unless the origin is in
  ``ALLOWED_ORIGINS``: CORS does not apply to WebSockets (CSWSH). Frame and
  protocol checks are in :mod:`gql.frames`, caps and expiry in :mod:`gql.websockets`.
* Every result, over HTTP and WebSocket, is serialised within
  ``MAX_RESPONSE_BYTES`` (:mod:`gql.response_size`).
* A request that failed as a whole because the database or broker was
  unreachable (every error ``SERVICE_UNAVAILABLE``) gets HTTP 503 with
  ``Retry-After``, so proxies and clients retry it rather than report a bug.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import strawberry
from cross_web import HTTPException as StrawberryHTTPException
from fastapi import HTTPException
from starlette.requests import Request
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from .auth import AuthenticationError
from .context import Context, get_context
from .errors import RETRY_AFTER_SECONDS, unavailable_only
from .frames import LimitedWebSocketAdapter, is_unicode
from .graphiql import GraphiQLRouter
from .persisted import PersistedQueryError
from .response_size import ResponseEncoder
from .settings import Settings
from .websockets import GraphQLTransportWSHandler, LegacyGraphQLWSHandler

__all__ = ["Router", "create_router"]


class Router(GraphiQLRouter):
    """The GraphiQL-serving router with the checks above. Build it with :func:`create_router`."""

    graphql_transport_ws_handler_class = GraphQLTransportWSHandler
    graphql_ws_handler_class = LegacyGraphQLWSHandler
    websocket_adapter_class = LimitedWebSocketAdapter
    max_frame_bytes: int = 64 * 1024
    response_encoder = ResponseEncoder(4 * 1024 * 1024)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate ``connection_init``; a refusal closes the socket with 4403."""
        params = context.connection_params
        authorization = params.get("authorization") if isinstance(params, dict) else None
        if authorization is not None and not isinstance(authorization, str):
            raise ConnectionRejectionError({"message": "authorization must be a string"})
        try:
            principal = await context.services.authenticator.authenticate(authorization)
        except AuthenticationError as exc:
            raise ConnectionRejectionError({"message": str(exc)}) from None
        if principal is None:
            raise ConnectionRejectionError(
                {"message": 'connection_init payload needs {"authorization": "Bearer <token>"}'}
            )
        context.principal = principal
        no_payload: UnsetType = UNSET
        return no_payload

    def encode_json(self, data: object) -> str:
        """Serialise a result or WebSocket message; one over the cap becomes its error."""
        return self.response_encoder(data)

    def parse_json(self, data: str | bytes) -> Any:
        """Decode a request body or a GET parameter; 400 unless it is a JSON object or array."""
        try:
            value = self.decode_json(data)
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError
            raise StrawberryHTTPException(400, "Unable to parse request body as JSON") from None
        if not isinstance(value, dict | list):
            raise StrawberryHTTPException(400, "The request body must be a JSON object")
        for item in value if isinstance(value, list) else [value]:
            for name in ("query", "operationName"):
                text = item.get(name) if isinstance(item, dict) else None
                if isinstance(text, str) and not is_unicode(text):
                    # It would come back in an error message that cannot be encoded.
                    raise StrawberryHTTPException(400, f"{name} must be valid Unicode")
        return value

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Run one operation: queries by GET or POST, mutations by POST, subscriptions never
        (they are served over WebSocket only)."""
        method = request_adapter.method
        allowed = {OperationType.QUERY} if method == "GET" else _HTTP_POST_OPERATIONS
        try:
            query = context.services.persisted_queries.document(
                request_data.query, request_data.extensions
            )
        except PersistedQueryError as exc:
            return ExecutionResult(data=None, errors=[exc.graphql_error])
        try:
            result = await self.schema.execute(
                query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as exc:
            if method == "GET" and exc.operation_type is OperationType.MUTATION:
                raise HTTPException(
                    405, "mutations are not allowed over GET; use POST", headers={"Allow": "POST"}
                ) from None
            reason = exc.as_http_error_reason(method)
            if exc.operation_type is OperationType.SUBSCRIPTION:
                reason += "; subscribe over WebSocket (graphql-transport-ws)"
            raise StrawberryHTTPException(400, reason) from None
        except CannotGetOperationTypeError as exc:
            raise StrawberryHTTPException(400, exc.as_http_error_reason()) from None
        except MissingQueryError:
            raise StrawberryHTTPException(400, "No GraphQL query found in the request") from None
        if unavailable_only(result.data, result.errors):
            sub_response.status_code = 503
            sub_response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return result


_HTTP_POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})


def create_router(settings: Settings, schema: strawberry.Schema) -> Router:
    """The /graphql router for ``settings``: GraphiQL off in production, WebSocket limits."""
    router = Router(
        schema,
        graphql_ide="graphiql" if settings.graphiql and not settings.production else None,
        context_getter=get_context,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout),
        # MAX_WS_OPERATIONS is counted by gql.admission, which answers with a code.
        max_subscriptions_per_connection=None,
        allowed_origins=settings.allowed_origins,
    )
    router.max_frame_bytes = settings.max_ws_frame_bytes
    router.response_encoder = ResponseEncoder(settings.max_response_bytes)
    return router
