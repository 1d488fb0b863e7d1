"""The hard cap on a serialised response, ``MAX_RESPONSE_BYTES``.

:class:`ResponseEncoder` serialises what the router sends, an HTTP result or
a WebSocket message, and nothing is sent before the whole text is known to
fit. A result
that does not fit is replaced by a result holding only a
``RESPONSE_TOO_LARGE`` error: over HTTP the body (status 200 with
``application/json``, as GraphQL over HTTP answers it; 400 with
``application/graphql-response+json``, where a response without ``data`` must
not be 2xx and the client must ask for less), over WebSocket the ``next``
(legacy ``data``) message of that operation, which is then completed as
usual; a subscription goes on with its next event.

The text is that of :func:`gql.encoding.dumps` (orjson where it writes what
:mod:`json` writes). It writes a whole result in one C call, so the text of a
result over the cap is built before it is refused: at most the size of the
result already held, which the cost limit bounds. :func:`encode_within`
writes piece by piece and stops as soon as the text would pass the cap (no
more than the cap plus one piece, e.g. one activity, is built), for a caller
that must not build more.

The cost limit (:mod:`gql.cost`) refuses most oversized operations before
they run; this cap catches what the estimate cannot know, such as the
escaping of non-ASCII characters.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .codes import ErrorCode
from .encoding import dumps

__all__ = ["ResponseEncoder", "ResponseTooLarge", "encode_within"]

logger = logging.getLogger(__name__)

# Containers this close to the top are written piece by piece; deeper values
# (one activity of a page, a WebSocket payload's fields) in one call of the C
# encoder, so the overshoot past the cap is at most one of them.
_SPLIT_DEPTH = 6
# Operation messages of graphql-transport-ws and of the legacy graphql-ws.
_RESULT_MESSAGES = frozenset({"next", "data"})


class ResponseTooLarge(Exception):
    """The serialised value would be longer than the cap."""


def encode_within(value: object, max_bytes: int) -> str:
    """``json.dumps(value, separators=(",", ":"))``, or :class:`ResponseTooLarge`.

    The text is ASCII (non-ASCII characters are escaped), so its length is its
    size in bytes.

    Raises:
        ResponseTooLarge: the text would be longer than ``max_bytes``.
    """
    parts: list[str] = []
    size = 0

    def emit(text: str) -> None:
        nonlocal size
        size += len(text)
        if size > max_bytes:
            raise ResponseTooLarge
        parts.append(text)

    def write(item: object, depth: int) -> None:
        if depth >= _SPLIT_DEPTH:
            emit(json.dumps(item, separators=(",", ":")))
        elif isinstance(item, dict) and all(isinstance(key, str) for key in item):
            emit("{")
            for index, (key, child) in enumerate(item.items()):
                emit(("," if index else "") + json.dumps(key) + ":")
                write(child, depth + 1)
            emit("}")
        elif isinstance(item, list | tuple):
            emit("[")
            for index, child in enumerate(item):
                if index:
                    emit(",")
                write(child, depth + 1)
            emit("]")
        else:
            emit(json.dumps(item, separators=(",", ":")))

    write(value, 0)
    return "".join(parts)


class ResponseEncoder:
    """Encodes results and WebSocket messages within ``max_bytes`` (see the module docstring)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def __call__(self, data: object) -> str:
        return self.encode(data)[0]

    def encode(self, data: object) -> tuple[str, object]:
        """The text sent for ``data``, and the value it encodes: ``data`` or its replacement."""
        text = dumps(data)
        if len(text) <= self.max_bytes:
            return text, data
        logger.warning("a response over MAX_RESPONSE_BYTES=%d was refused", self.max_bytes)
        replacement = self._replacement(data)
        return json.dumps(replacement, separators=(",", ":")), replacement

    def error(self) -> dict[str, Any]:
        """The ``RESPONSE_TOO_LARGE`` error, naming the setting."""
        return {
            "message": f"the response would be over MAX_RESPONSE_BYTES={self.max_bytes} "
            "bytes: ask for fewer items (first) or fewer fields",
            "extensions": {"code": ErrorCode.RESPONSE_TOO_LARGE},
        }

    def _replacement(self, data: object) -> dict[str, Any]:
        if isinstance(data, dict) and data.get("type") in _RESULT_MESSAGES and "id" in data:
            return {"type": data["type"], "id": data["id"], "payload": {"errors": [self.error()]}}
        # A request error in GraphQL-over-HTTP terms: no ``data`` entry.
        return {"errors": [self.error()]}
