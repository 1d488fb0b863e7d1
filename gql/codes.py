"""Every ``extensions.code`` an error can carry and every WebSocket close code the service sends.

Error codes are named as Apollo Server and most GraphQL clients expect; close
codes follow graphql-transport-ws (PROTOCOL.md of graphql-ws), and the legacy
``graphql-ws`` subprotocol gets the same ones. The README's error-code table and
the close-code table of docs/security.md list exactly these (tests/test_codes.py).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["RESUMABLE", "CloseCode", "ErrorCode"]


class ErrorCode(StrEnum):
    """The value of ``extensions.code``; a ``str``, so it serialises as its name."""

    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    """The document is not GraphQL (spec section 2) or has over ``MAX_TOKENS`` tokens."""
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    """The document breaks a validation rule (spec section 5), a depth, alias or cost limit."""
    BAD_USER_INPUT = "BAD_USER_INPUT"
    """A variable or argument value is invalid; ``extensions.field`` names it."""
    BAD_REQUEST = "BAD_REQUEST"
    """No query, an unknown ``operationName``, or an operation the transport does not carry."""
    UNAUTHENTICATED = "UNAUTHENTICATED"
    """No credentials for a field that needs them, or an invalid ``Authorization`` header."""
    FORBIDDEN = "FORBIDDEN"
    """The credentials do not allow this field or this userId."""
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    """Anything else; masked in production, with ``extensions.correlationId``."""
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    """The database or broker was unreachable; retry later (HTTP 503 with ``Retry-After``)."""
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    """An HTTP body over ``MAX_BODY_BYTES`` (status 413)."""
    RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"
    """A result that would serialise to over ``MAX_RESPONSE_BYTES``; nothing of it is sent."""
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    """Headers or body slower than ``REQUEST_HEADER_TIMEOUT``/``REQUEST_BODY_TIMEOUT`` (408)."""
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    """An ``idempotencyKey`` already named another write of this caller in the last 24 hours."""
    VERSION_CONFLICT = "VERSION_CONFLICT"
    """``expectedVersion`` is not the current version; ``extensions.version`` is."""
    SUBSCRIBER_OVERFLOW = "SUBSCRIBER_OVERFLOW"
    """A subscription read more than ``SUBSCRIBER_QUEUE`` events behind; resume with ``after``."""
    BROKER_DISCONNECTED = "BROKER_DISCONNECTED"
    """The broker connection was lost under a subscription; resume with ``after``."""
    SUBSCRIPTION_ENDED = "SUBSCRIPTION_ENDED"
    """A subscription's channel failed otherwise; resume with ``after``."""
    CURSOR_EXPIRED = "CURSOR_EXPIRED"
    """``after`` is older than ``OUTBOX_RETENTION``; subscribe again without it."""
    SUBSCRIPTION_LIMIT = "SUBSCRIPTION_LIMIT"
    """An operation over ``MAX_WS_OPERATIONS`` or ``MAX_SUBSCRIPTIONS_PER_USER``/``_SERVICE``."""
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    """A mutation by GET, or an HTTP method other than GET and POST (405 with ``Allow``)."""
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
    """``Accept`` allows neither ``application/graphql-response+json`` nor JSON (406)."""
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    """A POST body that is not ``application/json`` in UTF-8, or has no ``Content-Type`` (415)."""
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    """An APQ hash this instance does not hold; send it again with the query (Apollo's code)."""
    PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
    """``extensions.persistedQuery`` while APQ is off (``APQ_CACHE_SIZE=0``)."""
    PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
    """``persistedQuery.sha256Hash`` is not the SHA-256 of the query sent with it."""
    PERSISTED_QUERY_NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"
    """With ``PERSISTED_QUERIES_MANIFEST`` set, a document or id not in the allow-list."""


RESUMABLE: frozenset[ErrorCode] = frozenset(
    {ErrorCode.SUBSCRIBER_OVERFLOW, ErrorCode.BROKER_DISCONNECTED, ErrorCode.SUBSCRIPTION_ENDED}
)
"""Codes that end a subscription which the client resumes with ``after`` = its last ``seq``."""


class CloseCode(IntEnum):
    """WebSocket close codes, ours and those Strawberry's protocol handlers send."""

    NORMAL = 1000
    """The legacy client sent ``connection_terminate`` (RFC 6455 section 7.4.1)."""
    GOING_AWAY = 1001
    """The instance is shutting down; resubscribe elsewhere with ``after`` (RFC 6455 7.4.1)."""
    POLICY_VIOLATION = 1008
    """Over ``MAX_SOCKETS_PER_USER``/``_SERVICE`` at ``connection_init``, or a socket
    sending over ``WS_MESSAGES_PER_SECOND`` (RFC 6455 7.4.1)."""
    TOO_BIG = 1009
    """A frame over ``MAX_WS_FRAME_BYTES`` (RFC 6455 section 7.4.1)."""
    TRY_AGAIN_LATER = 1013
    """Over ``MAX_CONNECTIONS`` or ``MAX_PENDING_SOCKETS_PER_ADDRESS`` (IANA registry)."""
    BAD_FRAME = 4400
    """A malformed frame (not a JSON object of the protocol's shape). A document
    that does not parse is an ``error`` message for its operation instead."""
    UNAUTHORIZED = 4401
    """An operation before ``connection_ack``."""
    FORBIDDEN = 4403
    """Missing or invalid credentials at ``connection_init``, or the token expired."""
    SUBPROTOCOL_NOT_ACCEPTABLE = 4406
    """No or an unknown WebSocket subprotocol."""
    INIT_TIMEOUT = 4408
    """No ``connection_init`` within ``CONNECTION_INIT_TIMEOUT`` seconds."""
    DUPLICATE_OPERATION = 4409
    """An operation id already in use (graphql-transport-ws)."""
    TOO_MANY_INIT = 4429
    """A second ``connection_init``."""
