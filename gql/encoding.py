"""Compact JSON text, fast: orjson where it writes exactly what :mod:`json` writes.

Every response and WebSocket message the service sends is the text of
``json.dumps(value, separators=(",", ":"))``: ASCII only, non-ASCII characters
and DEL escaped, floats as ``repr``. :func:`dumps` gives that text, byte for
byte, with orjson's C encoder when it can tell that orjson writes the same, and
with :mod:`json` otherwise:

* orjson writes non-ASCII characters and DEL as they are: such text goes to
  :mod:`json`, which escapes them;
* orjson spells some floats unlike ``repr`` (``1e16``, ``0.00001``; json
  ``1e+16``, ``1e-05``): text with a float (a number outside the strings with
  a ``.`` or an exponent) goes to :mod:`json`;
* orjson refuses what :mod:`json` accepts (keys other than strings, integers
  past 64 bits, lone surrogates) and both refuse other types than JSON's:
  :mod:`json` decides. Values that orjson alone would encode (dataclasses,
  datetimes, subclasses) are passed through to that refusal.

Results hold only what GraphQL serialisation produced (strings, ints, bools,
null, finite floats, the ``JSON`` scalar's stored objects, which are validated
finite), so NaN, which the two encoders spell differently, never occurs.
"""

from __future__ import annotations

import json
import re

import orjson

__all__ = ["dumps"]

_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# A JSON string (escapes included), and a float once the strings are removed.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_FLOAT = re.compile(rb"[0-9][.eE]")


def _refuse(value: object) -> object:
    raise TypeError


def dumps(value: object) -> str:
    """``json.dumps(value, separators=(",", ":"))``, byte for byte.

    Raises:
        TypeError: as :func:`json.dumps`, for a value JSON cannot hold.
        ValueError: as :func:`json.dumps`, for a circular reference.
    """
    try:
        data = orjson.dumps(value, default=_refuse, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"))
    if data.isascii() and b"\x7f" not in data and _FLOAT.search(_STRING.sub(b"", data)) is None:
        return data.decode("ascii")
    return json.dumps(value, separators=(",", ":"))
