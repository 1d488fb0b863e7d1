"""HTTP-level errors as GraphQL responses: ``{"errors": [{"message", "extensions": {"code"}}]}``.

Whatever refuses a request before GraphQL runs (a body that is not JSON, no
query, a content type or ``Accept`` we cannot serve, a mutation by GET, a body
over ``MAX_BODY_BYTES``, a request too slow) answers with this shape, in the
negotiated media type (:mod:`gql.negotiation`), with a stable code from
:class:`gql.codes.ErrorCode`, so clients handle every failure one way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response

from .codes import ErrorCode
from .negotiation import JSON, content_type

__all__ = ["HTTPError", "error_body", "error_response"]


class HTTPError(Exception):
    """A request refused as a whole with ``status`` and one error of ``code``.

    Args:
        status: the HTTP status, 4xx or 5xx.
        code: the error's ``extensions.code``.
        message: what is wrong and, where it helps, what to do instead.
        headers: extra response headers, e.g. ``Allow`` for 405.
    """

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(message: str, code: ErrorCode) -> bytes:
    """The JSON of a GraphQL response holding one request error (no ``data`` entry)."""
    return json.dumps(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        separators=(",", ":"),
    ).encode()


def error_response(error: HTTPError, media_type: str | None = JSON) -> Response:
    """The response for ``error`` in ``media_type`` (``application/json`` when None)."""
    return Response(
        error_body(error.message, error.code),
        status_code=error.status,
        headers={**error.headers, "content-type": content_type(media_type or JSON)},
    )
