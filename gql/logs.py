"""Logging for ``serve``: readable text or JSON lines, request ids, credentials scrubbed.

* **Format.** ``LOG_FORMAT=text`` (default) writes ``time level logger
  [request id] message``; ``LOG_FORMAT=json`` one JSON object per line with
  ``time``, ``level``, ``logger``, ``message``, ``request_id`` (when there is
  one) and ``exc_info`` (a traceback, when there is one).
* **Request ids.** :class:`RequestId` gives every HTTP request and WebSocket
  the id of its ``X-Request-ID`` header when that is 1-64 characters of
  ``A-Z a-z 0-9 . _ : -``, or a new random one, and echoes it back in the
  response's (or the handshake's) ``X-Request-ID``. Every line logged while
  the request or socket is served carries it, uvicorn's access line and the
  socket's subscriptions included.
* **Credentials.** A client may put a token in a URL (``/graphql?token=...``,
  a WebSocket URL built by a browser library); uvicorn prints the whole path.
  Every line is scrubbed as it is written: the values of query parameters
  whose name looks like a credential, ``Bearer`` tokens and anything shaped
  like a JWT become ``[REDACTED]``. Nothing in the service logs headers,
  variables or payloads (metadata, notes) in the first place.
* **Quiet start.** Alembic's per-migration INFO lines and uvicorn's start-up
  lines (not its address) are dropped below WARNING; the service logs one
  line per resource it opens (see :mod:`gql.app`), and the dev-mode warning.
"""

from __future__ import annotations

import copy
import json
import logging
import logging.config
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REDACTED",
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "QuietStartup",
    "RequestId",
    "ScrubCredentials",
    "TextFormatter",
    "configure",
    "log_config",
    "request_id",
    "safe_url",
    "scrub_path",
    "scrub_text",
]

REDACTED = "[REDACTED]"
REQUEST_ID_HEADER = "x-request-id"
# Query parameter names that carry credentials, matched case-insensitively anywhere in the name.
_CREDENTIAL_WORDS = r"token|auth|bearer|jwt|key|secret|password|passwd|session|signature|credential"
_CREDENTIAL_NAME = re.compile(_CREDENTIAL_WORDS, re.I)
_SECRETS = (
    # name=value in a query string anywhere in a line.
    (
        re.compile(
            rf"([?&;][^=&\s\"';\\]*(?:{_CREDENTIAL_WORDS})[^=&\s\"';\\]*=)[^&\s\"';\\]*", re.I
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.I), rf"\1{REDACTED}"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
)
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id() -> str | None:
    """The id of the request or socket being served, or ``None`` outside one."""
    return _request_id.get()


def scrub_path(path: str) -> str:
    """``path`` with the values of credential-like query parameters replaced by ``[REDACTED]``."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_CREDENTIAL_NAME.search(name) for name, _ in pairs):
        return path
    scrubbed = [
        (name, REDACTED if _CREDENTIAL_NAME.search(name) else value) for name, value in pairs
    ]
    return f"{base}?{urlencode(scrubbed, safe='[]')}"


def safe_url(url: str) -> str:
    """``url`` fit for a log line: no password, no credential-like query values."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return "<unparsable URL>"
    if password is not None:
        url = url.replace(f":{password}@", f":{REDACTED}@", 1)
    return scrub_path(url)


def scrub_text(text: str) -> str:
    """``text`` with credential query values, ``Bearer`` tokens and JWTs replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class ScrubCredentials(logging.Filter):
    """Scrubs the request path of uvicorn access records (their third argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], scrub_path(args[2]), *args[3:])
        return True


class QuietStartup(logging.Filter):
    """Drops uvicorn's INFO lines of a normal start (not its address line).

    The shutdown lines stay: "Application shutdown complete." tells a graceful stop.
    """

    NOISE = frozenset(
        {
            "Started server process [%d]",
            "Started parent process [%d]",
            "Waiting for application startup.",
            "Application startup complete.",
        }
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and record.msg in self.NOISE)


class TextFormatter(logging.Formatter):
    """``time level logger [request id] message``, scrubbed."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or request_id()
        record.rid = f" [{rid}]" if rid else ""
        return scrub_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub_text(record.getMessage()),
        }
        rid = getattr(record, "request_id", None) or request_id()
        if rid:
            body["request_id"] = rid
        if record.exc_info:
            body["exc_info"] = scrub_text(self.formatException(record.exc_info))
        return json.dumps(body, ensure_ascii=False, default=str)


class RequestId:
    """ASGI middleware: a request id for each HTTP request and WebSocket (see above)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        rid = given if _VALID_REQUEST_ID.fullmatch(given) else secrets.token_hex(16)
        token = _request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


LogFormat = Literal["text", "json"]


def log_config(log_format: LogFormat = "text", level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration with the formats, filters and levels above.

    The root logger (the service's own loggers) writes through the same handler.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    formatter = {"()": JsonFormatter if log_format == "json" else TextFormatter}
    config["formatters"] = {"default": formatter, "access": dict(formatter)}
    config.setdefault("filters", {}).update(
        {
            "scrub_credentials": {"()": ScrubCredentials},
            "quiet_startup": {"()": QuietStartup},
        }
    )
    config["handlers"]["access"].setdefault("filters", []).append("scrub_credentials")
    config["handlers"]["default"].setdefault("filters", []).append("quiet_startup")
    config["loggers"]["alembic"] = {"level": "WARNING"}
    config["root"] = {"handlers": ["default"], "level": level.upper()}
    # uvicorn's loggers propagate nothing to the root; the service's own do.
    config["loggers"]["uvicorn"]["level"] = level.upper()
    return config


def configure(log_format: LogFormat = "text", level: str = "info") -> None:
    """Apply :func:`log_config` to this process (before anything logs)."""
    logging.config.dictConfig(log_config(log_format, level))
