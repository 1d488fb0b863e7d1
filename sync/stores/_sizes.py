"""Estimated heap bytes of store state, for the memory store's byte budget.

A payload's JSON length alone underestimates what its Python objects take:
16 KiB of metadata written as ``[{}, {}, ...]`` is 16 KiB of JSON but about
400 KB of dicts. So the estimate also charges every value (each follows a
``,`` or ``:`` in the JSON, or opens it) and every dict or list (``{``, ``[``)
for its table. Counting happens in C
(``json.dumps``, ``str.count``), so estimating a 16 KiB payload costs tens of
microseconds; the characters counted inside strings only make it err high.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ENTRY_BYTES", "estimated_bytes"]

# A value's object header, its slot in the parent and, for a key, its hash entry.
VALUE_BYTES = 64
# What a dict or a list adds beyond a value: its hash table, or its array.
DICT_BYTES = 128
LIST_BYTES = 64
# What the store keeps per user besides payloads: its state, tuple, key and sizes.
ENTRY_BYTES = 512


def estimated_bytes(payload: Any) -> int:
    """Roughly the bytes of ``payload``'s Python objects (JSON-shaped data), erring high."""
    text = json.dumps(payload, separators=(",", ":"), default=str)
    values = 1 + text.count(",") + text.count(":")
    dicts = DICT_BYTES * text.count("{")
    lists = LIST_BYTES * text.count("[")
    return len(text) + VALUE_BYTES * values + dicts + lists
