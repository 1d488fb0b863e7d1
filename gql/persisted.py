"""Persisted queries: Apollo's Automatic Persisted Queries and an allow-list of known operations.

A request names its document by hash in ``extensions.persistedQuery``
(``{"version": 1, "sha256Hash": "<64 hex digits>"}``), over GET, POST and
WebSocket ``subscribe``/``start`` alike. ``version`` must be the integer 1;
in APQ a hash that is not 64 hex digits is ``BAD_REQUEST`` (upper-case hex is
read as lower-case):

* **APQ** (the default): a hash alone is looked up in a bounded LRU of
  ``APQ_CACHE_SIZE`` documents; a miss is ``PERSISTED_QUERY_NOT_FOUND``
  (message ``PersistedQueryNotFound``, which Apollo clients answer by sending
  the hash again with the query). A hash with a query must be the SHA-256 of
  the query's UTF-8 text (else ``PERSISTED_QUERY_HASH_MISMATCH``); the query is
  stored and runs. ``APQ_CACHE_SIZE=0`` turns APQ off:
  ``PERSISTED_QUERY_NOT_SUPPORTED``, and Apollo clients fall back to full queries.
* **Allow-list** (``PERSISTED_QUERIES_MANIFEST`` set): only the manifest's
  documents run, named by their id or sent as their exact text; anything else
  is ``PERSISTED_QUERY_NOT_ALLOWED``, and nothing is registered.

Documents go through the same parser and limits (``MAX_TOKENS``, depth, cost)
as any other; a stored one is at most ``APQ_MAX_QUERY_BYTES`` long, so the
cache holds at most ``APQ_CACHE_SIZE`` x ``APQ_MAX_QUERY_BYTES`` bytes of text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphql import GraphQLError, GraphQLFormattedError

from .codes import ErrorCode

__all__ = [
    "NOT_FOUND_MESSAGE",
    "NOT_SUPPORTED_MESSAGE",
    "PersistedQueries",
    "PersistedQueryError",
    "load_manifest",
    "parse_manifest",
]

# The messages Apollo Server sends and Apollo clients also match on.
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
NOT_SUPPORTED_MESSAGE = "PersistedQueryNotSupported"
APQ_VERSION = 1
APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Ids of a manifest are opaque (Relay's default is an MD5), but short.
_MAX_ID_LENGTH = 256


class PersistedQueryError(Exception):
    """A request's persisted query is refused; ``code`` is its ``extensions.code``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def graphql_error(self) -> GraphQLError:
        return GraphQLError(str(self), extensions={"code": self.code})

    @property
    def formatted(self) -> GraphQLFormattedError:
        return self.graphql_error.formatted


def sha256_hex(document: str) -> str:
    """The APQ hash of ``document``: SHA-256 of its UTF-8 text, in lower-case hex."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


class PersistedQueries:
    """The documents a request may name by hash, and the check of those it sends.

    Args:
        cache_size: documents the APQ cache keeps (least recently used go first);
            0 turns APQ off.
        max_query_bytes: the longest document (UTF-8 bytes) the cache stores.
        manifest: id -> document of the allow-list (see :func:`parse_manifest`);
            ``None`` for APQ.
    """

    def __init__(
        self,
        *,
        cache_size: int,
        max_query_bytes: int,
        manifest: Mapping[str, str] | None = None,
    ) -> None:
        self.cache_size = cache_size
        self.max_query_bytes = max_query_bytes
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._manifest = dict(manifest) if manifest is not None else None
        self._allowed = (
            frozenset(sha256_hex(body) for body in self._manifest.values())
            if self._manifest is not None
            else frozenset()
        )

    @property
    def allow_list(self) -> bool:
        """Whether only the manifest's documents run."""
        return self._manifest is not None

    def __len__(self) -> int:
        """Documents in the APQ cache now."""
        return len(self._cache)

    def document(self, query: str | None, extensions: Mapping[str, Any] | None) -> str | None:
        """The document to run for a request's ``query`` and ``extensions``.

        Returns ``query`` unchanged when the request names no persisted query
        and no allow-list applies (``None`` then means no query was sent).

        Raises:
            PersistedQueryError: the hash is unknown, does not match the query or
                is malformed, APQ is off, or the allow-list refuses the document.
        """
        persisted = extensions.get("persistedQuery") if extensions is not None else None
        if persisted is None:
            if self._manifest is not None and query is not None:
                self._check_allowed(query)
            return query
        key = _hash_of(persisted)
        if self._manifest is not None:
            return self._from_manifest(key, query)
        if self.cache_size == 0:
            raise PersistedQueryError(
                ErrorCode.PERSISTED_QUERY_NOT_SUPPORTED, NOT_SUPPORTED_MESSAGE
            )
        # Apollo sends lower-case hex; upper-case names the same document.
        key = key.lower()
        if not _SHA256_HEX.fullmatch(key):
            # Malformed, so never in the cache: not a miss the client should answer.
            raise PersistedQueryError(
                ErrorCode.BAD_REQUEST, "persistedQuery.sha256Hash must be 64 hexadecimal digits"
            )
        if query is None:
            stored = self._cache.get(key)
            if stored is None:
                raise PersistedQueryError(ErrorCode.PERSISTED_QUERY_NOT_FOUND, NOT_FOUND_MESSAGE)
            self._cache.move_to_end(key)
            return stored
        return self._register(key, query)

    def resolve_payload(self, payload: dict[str, Any]) -> GraphQLFormattedError | None:
        """Put the document a WebSocket ``subscribe``/``start`` payload names in its ``query``.

        Returns:
            ``None`` when the operation may run, else the error to answer it with.
        """
        query = payload.get("query")
        extensions = payload.get("extensions")
        try:
            document = self.document(
                query if isinstance(query, str) else None,
                extensions if isinstance(extensions, dict) else None,
            )
        except PersistedQueryError as exc:
            return exc.formatted
        if document is None:
            return PersistedQueryError(ErrorCode.BAD_REQUEST, "the payload has no query").formatted
        payload["query"] = document
        return None

    def _register(self, key: str, query: str) -> str:
        if sha256_hex(query) != key:
            raise PersistedQueryError(
                ErrorCode.PERSISTED_QUERY_HASH_MISMATCH,
                "persistedQuery.sha256Hash is not the SHA-256 of the query's UTF-8 text",
            )
        if len(query) > self.max_query_bytes or len(query.encode()) > self.max_query_bytes:
            raise PersistedQueryError(
                ErrorCode.BAD_REQUEST,
                f"a persisted query is at most {self.max_query_bytes} bytes (APQ_MAX_QUERY_BYTES); "
                "send it without extensions.persistedQuery",
            )
        self._cache[key] = query
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return query

    def _from_manifest(self, key: str, query: str | None) -> str:
        assert self._manifest is not None
        known = self._manifest.get(key)
        if known is None:
            raise PersistedQueryError(
                ErrorCode.PERSISTED_QUERY_NOT_ALLOWED,
                "the persisted query is not in this server's allow-list",
            )
        if query is not None and query != known:
            raise PersistedQueryError(
                ErrorCode.PERSISTED_QUERY_HASH_MISMATCH,
                "the query differs from the allow-list's document of that id",
            )
        return known

    def _check_allowed(self, query: str) -> None:
        if sha256_hex(query) not in self._allowed:
            raise PersistedQueryError(
                ErrorCode.PERSISTED_QUERY_NOT_ALLOWED,
                "only the operations of this server's allow-list run; the document is not in it",
            )


def _hash_of(persisted: object) -> str:
    """``persistedQuery.sha256Hash``, checked for shape and version."""
    if not isinstance(persisted, dict):
        raise PersistedQueryError(
            ErrorCode.BAD_REQUEST, "extensions.persistedQuery must be an object"
        )
    version = persisted.get("version")
    # The integer 1: True and 1.0 compare equal to it in Python, not in the protocol.
    if type(version) is not int or version != APQ_VERSION:
        raise PersistedQueryError(
            ErrorCode.BAD_REQUEST, f"persistedQuery.version must be {APQ_VERSION}"
        )
    key = persisted.get("sha256Hash")
    if not isinstance(key, str) or not 0 < len(key) <= _MAX_ID_LENGTH:
        raise PersistedQueryError(
            ErrorCode.BAD_REQUEST,
            f"persistedQuery.sha256Hash must be a string of 1-{_MAX_ID_LENGTH} characters",
        )
    return key


def parse_manifest(data: object) -> dict[str, str]:
    """id -> document of a manifest as Apollo or Relay writes it.

    Apollo (``@apollo/generate-persisted-query-manifest``):
    ``{"format": "apollo-persisted-query-manifest", "version": 1,
    "operations": [{"id", "name", "type", "body"}, ...]}``. Relay
    (``relay-compiler`` ``persistOutput``): ``{"<id>": "<document>", ...}``.

    Raises:
        ValueError: the data is neither, or an id or document is not a
            non-empty string.
    """
    if not isinstance(data, dict):
        raise ValueError("the manifest must be a JSON object")
    if "format" in data or "operations" in data:
        if data.get("format") != APOLLO_MANIFEST_FORMAT or data.get("version") != 1:
            raise ValueError(f'an Apollo manifest needs "format": "{APOLLO_MANIFEST_FORMAT}"')
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ValueError('an Apollo manifest needs an "operations" list')
        pairs = []
        for index, item in enumerate(operations):
            if not isinstance(item, dict):
                raise ValueError(f"operations[{index}] must be an object")
            pairs.append((item.get("id"), item.get("body"), f"operations[{index}]"))
    else:
        pairs = [(key, value, repr(key)[:40]) for key, value in data.items()]
    manifest: dict[str, str] = {}
    for key, body, where in pairs:
        if not isinstance(key, str) or not 0 < len(key) <= _MAX_ID_LENGTH:
            raise ValueError(f"{where}: the id must be a string of 1-{_MAX_ID_LENGTH} characters")
        if not isinstance(body, str) or not body.strip():
            raise ValueError(f"{where}: the document must be a non-empty string")
        if manifest.get(key, body) != body:
            raise ValueError(f"{where}: the id {key!r} names two documents")
        manifest[key] = body
    if not manifest:
        raise ValueError("the manifest lists no operation")
    return manifest


def load_manifest(path: str | Path) -> dict[str, str]:
    """:func:`parse_manifest` of the JSON file at ``path``.

    Raises:
        ValueError: the file cannot be read, is not JSON, or is not a manifest;
            the message is one line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read the manifest: {reason}") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"the manifest is not JSON: {exc}") from None
    return parse_manifest(data)
