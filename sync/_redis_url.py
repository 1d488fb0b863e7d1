"""Redis URLs as this project writes them: redis-py's URL plus a ``prefix`` query parameter."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["split_prefix"]


def split_prefix(url: str, default: str = "") -> tuple[str, str]:
    """Split ``?prefix=...`` off a Redis URL: ``(url without it, prefix or default)``.

    The other query parameters (``client_name``, ``socket_timeout``, ...) stay
    for redis-py.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for key, value in query if key == "prefix"]
    rest = urlencode([(key, value) for key, value in query if key != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefixes[-1] if prefixes else default
