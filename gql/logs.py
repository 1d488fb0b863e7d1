"""Logging set-up for ``serve``: uvicorn's own configuration, with credentials scrubbed.

A client may put a token in a URL (``/graphql?token=...``, a WebSocket URL
built by a browser library); uvicorn's access log prints the whole path, so
the value would sit in log files for anyone who can read them.
:class:`ScrubCredentials` replaces the value of every query parameter whose
name looks like a credential with ``[REDACTED]`` before the line is written.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["REDACTED", "ScrubCredentials", "log_config", "scrub_path"]

REDACTED = "[REDACTED]"
# Query parameter names that carry credentials, matched case-insensitively anywhere in the name.
_CREDENTIAL_NAME = re.compile(
    r"token|auth|bearer|jwt|key|secret|password|passwd|session|signature|credential", re.I
)


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


class ScrubCredentials(logging.Filter):
    """Scrubs the request path of uvicorn access records (their third argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], scrub_path(args[2]), *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration plus :class:`ScrubCredentials` on access lines."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["scrub_credentials"] = {"()": ScrubCredentials}
    config["handlers"]["access"].setdefault("filters", []).append("scrub_credentials")
    return config
