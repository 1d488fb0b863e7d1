"""The /graphql endpoint: Strawberry's FastAPI router with authentication and limits.

* HTTP follows GraphQL over HTTP (GraphQL Foundation): the response media type
  is negotiated from ``Accept`` (:mod:`gql.negotiation`), and so is the status
  of a result. GET may run queries, never mutations (405 with ``Allow: POST``);
  POST runs queries and mutations and needs ``Content-Type: application/json``;
  subscriptions are refused (400) as they need a socket. Every refusal is a
  GraphQL response with ``extensions.code`` (:mod:`gql.http_errors`).
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

from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import strawberry
from cross_web import HTTPException as StrawberryHTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.http.types import QueryParams
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from .auth import AuthenticationError
from .codes import ErrorCode
from .context import Context, get_context
from .errors import RETRY_AFTER_SECONDS, unavailable_only
from .frames import LimitedWebSocketAdapter, is_unicode, loads_json
from .graphiql import GraphiQLRouter
from .http_errors import HTTPError, error_response
from .negotiation import GRAPHQL_RESPONSE_JSON, JSON, content_type, negotiate, result_status
from .persisted import PersistedQueryError
from .response_size import ResponseEncoder
from .settings import Settings
from .websockets import GraphQLTransportWSHandler, LegacyGraphQLWSHandler

__all__ = ["Router", "create_router"]

# The media type negotiated for the request being served (set in Router.run).
_MEDIA_TYPE: ContextVar[str] = ContextVar("graphql_media_type", default=JSON)
_ALLOWED_METHODS = "GET, POST"
# Every other method gets a 405 of GraphQL shape with the right Allow (Starlette's
# own names only the GET route's methods). HEAD would run nothing a client can use.
_OTHER_METHODS = ["HEAD", "OPTIONS", "PUT", "PATCH", "DELETE", "TRACE"]


class Router(GraphiQLRouter):
    """The GraphiQL-serving router with the checks above. Build it with :func:`create_router`."""

    graphql_transport_ws_handler_class = GraphQLTransportWSHandler
    graphql_ws_handler_class = LegacyGraphQLWSHandler
    websocket_adapter_class = LimitedWebSocketAdapter
    max_frame_bytes: int = 64 * 1024
    message_rate: tuple[float, int] = (100.0, 200)
    max_send_buffer_bytes: int = 8 * 1024 * 1024
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
            value = loads_json(data)
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, NaN
            raise HTTPError(
                400, ErrorCode.BAD_REQUEST, "Unable to parse request body as JSON"
            ) from None
        if not isinstance(value, dict | list):
            raise HTTPError(400, ErrorCode.BAD_REQUEST, "The request body must be a JSON object")
        for item in value if isinstance(value, list) else [value]:
            for name in ("query", "operationName"):
                text = item.get(name) if isinstance(item, dict) else None
                if isinstance(text, str) and not is_unicode(text):
                    # It would come back in an error message that cannot be encoded.
                    raise HTTPError(400, ErrorCode.BAD_REQUEST, f"{name} must be valid Unicode")
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
                raise HTTPError(
                    405,
                    ErrorCode.METHOD_NOT_ALLOWED,
                    "mutations are not allowed over GET; use POST",
                    headers={"Allow": "POST"},
                ) from None
            reason = exc.as_http_error_reason(method)
            if exc.operation_type is OperationType.SUBSCRIPTION:
                reason += "; subscribe over WebSocket (graphql-transport-ws)"
            raise HTTPError(400, ErrorCode.BAD_REQUEST, reason) from None
        except CannotGetOperationTypeError as exc:
            # GetOperation failed: a request error of a well-formed request, so a
            # GraphQL result (200 with application/json, 400 with the new media type).
            error = GraphQLError(
                exc.as_http_error_reason(), extensions={"code": ErrorCode.BAD_REQUEST}
            )
            return ExecutionResult(data=None, errors=[error])
        except MissingQueryError:
            raise HTTPError(
                400, ErrorCode.BAD_REQUEST, "No GraphQL query found in the request"
            ) from None
        if unavailable_only(result.data, result.errors) and (
            # With the new media type non-null data must be 2xx (GraphQL over HTTP).
            result.data is None or _MEDIA_TYPE.get() == JSON
        ):
            sub_response.status_code = 503
            sub_response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return result

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """The response of ``result``; a request error has no ``data`` with the new media type.

        A request error (parse, validation, operation choice, variable coercion)
        is raised before execution, so none of its errors has a ``path``. With
        ``application/json`` the body keeps ``"data": null`` as it always had.
        """
        response = await super().process_result(request, result)
        if (
            _MEDIA_TYPE.get() == GRAPHQL_RESPONSE_JSON
            and result.data is None
            and result.errors
            and all(error.path is None for error in result.errors)
        ):
            response.pop("data", None)
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """Encode ``response_data`` in the negotiated media type, with its status."""
        media_type = _MEDIA_TYPE.get()
        # The status follows what is sent: a result replaced by RESPONSE_TOO_LARGE has no data.
        text, sent = self.response_encoder.encode(response_data)
        status = sub_response.status_code
        if not status:
            status = result_status(media_type, sent) if isinstance(sent, dict) else 200
        response = Response(text, status_code=status, media_type=None)
        response.headers["content-type"] = content_type(media_type)
        response.headers.raw.extend(sub_response.headers.raw)
        return response

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Check the request's content type and parameters (GraphQL over HTTP, Request).

        A POST needs ``application/json`` in UTF-8 (415 otherwise); ``operationName``
        must be a string or null (400), like ``query``, ``variables`` and
        ``extensions``, which Strawberry checks.
        """
        if request.method == "POST":
            media_type, params = parse_content_type(request.content_type or "")
            charset = params.get("charset", "utf-8").lower()
            if media_type.lower() != JSON or charset not in ("utf-8", "utf8"):
                raise HTTPError(
                    415,
                    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                    "POST a JSON body with Content-Type: application/json (UTF-8)",
                )
        data = await super().parse_http_body(request)
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item.operation_name, str | None):
                raise HTTPError(
                    400, ErrorCode.BAD_REQUEST, "operationName must be a string or null"
                )
        return data

    def parse_query_params(self, params: QueryParams) -> dict[str, Any]:
        """GET parameters; an empty ``operationName``, ``variables`` or ``extensions`` is absent."""
        present = {
            name: value
            for name, value in params.items()
            if not (name in ("operationName", "variables", "extensions") and value == "")
        }
        return super().parse_query_params(present)

    async def run(  # type: ignore[override]
        self,
        request: Request | WebSocket,
        context: Context | UnsetType = UNSET,
        root_value: UnsetType | None = UNSET,
    ) -> Response | WebSocket:
        """Serve one request; every refusal of an HTTP request is a GraphQL response.

        The media type is negotiated first: a request that accepts neither
        ``application/graphql-response+json`` nor ``application/json`` gets 406
        (unless it is a browser asking for GraphiQL).
        """
        if isinstance(request, WebSocket):
            return await super().run(request, context, root_value)  # type: ignore[arg-type]
        media_type = negotiate(request.headers.get("accept"))
        token = _MEDIA_TYPE.set(media_type or JSON)
        try:
            if media_type is None and not self.should_render_graphql_ide(
                self.request_adapter_class(request)
            ):
                raise HTTPError(
                    406,
                    ErrorCode.NOT_ACCEPTABLE,
                    f"Accept allows neither {GRAPHQL_RESPONSE_JSON} nor {JSON}",
                )
            response: Response = await super().run(request, context, root_value)  # type: ignore[arg-type]
            return response
        except HTTPError as error:
            return error_response(error, media_type)
        except StrawberryHTTPException as exc:
            # What Strawberry itself refuses: variables or extensions not an object,
            # batches, or GraphiQL asked for where it is off (404).
            return error_response(
                HTTPError(exc.status_code, ErrorCode.BAD_REQUEST, exc.reason), media_type
            )
        finally:
            _MEDIA_TYPE.reset(token)


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
    router.add_api_route("", _method_not_allowed, methods=_OTHER_METHODS, include_in_schema=False)
    router.max_frame_bytes = settings.max_ws_frame_bytes
    router.message_rate = (settings.ws_messages_per_second, settings.ws_message_burst)
    router.max_send_buffer_bytes = settings.max_ws_send_buffer_bytes
    router.response_encoder = ResponseEncoder(settings.max_response_bytes)
    return router


async def _method_not_allowed(request: Request) -> Response:
    # RFC 9110 section 15.5.6: a 405 names the methods that are allowed.
    return error_response(
        HTTPError(
            405,
            ErrorCode.METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on /graphql; use GET (queries) or POST",
            headers={"Allow": _ALLOWED_METHODS},
        ),
        negotiate(request.headers.get("accept")),
    )
