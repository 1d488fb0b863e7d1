"""Idempotency keys: a client's retried write runs once and gets its first result again.

A write that names a key first *claims* it, inside its own transaction, by
inserting ``(principal, key)`` under the primary key. The first claim wins;
a concurrent retry blocks on the key until that transaction ends (PostgreSQL),
or waits its turn (SQLite has one writer), and then finds the row:

* same operation and input: the retry gets the first result and writes nothing;
* anything else: :class:`IdempotencyKeyReused`.

A key is honoured for :data:`KEY_TTL`; an expired key is claimed afresh, and
:func:`prune` deletes expired ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from ._upsert import insert_for
from .models import IdempotencyKey, utcnow
from .validation import InvalidInput, check_text

__all__ = [
    "KEY_MAX_CHARS",
    "KEY_TTL",
    "IdempotencyKeyReused",
    "claim",
    "complete",
    "prune",
    "request_hash",
]

KEY_MAX_CHARS = 128
KEY_TTL = timedelta(hours=24)


class IdempotencyKeyReused(Exception):
    """The key was used within :data:`KEY_TTL` for another operation or another input."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r:.140} was already used for a different write in the last "
            f"{int(KEY_TTL.total_seconds() // 3600)} hours; use a new key for a new write"
        )


def request_hash(operation: str, arguments: Mapping[str, Any]) -> str:
    """A stable digest of an operation and its arguments (JSON, keys sorted)."""
    text = json.dumps([operation, arguments], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _check_key(key: str) -> str:
    check_text(key, field="idempotency_key")
    if not 1 <= len(key) <= KEY_MAX_CHARS:
        raise InvalidInput(
            "idempotency_key", f"must be 1-{KEY_MAX_CHARS} characters (got {len(key)})"
        )
    return key


async def claim(
    session: AsyncSession,
    *,
    principal: str,
    key: str,
    operation: str,
    digest: str,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Claim ``key`` in the caller's transaction.

    Returns:
        ``None`` when this write is the first with the key (do it, then call
        :func:`complete`), or the first write's result when this is a retry.

    Raises:
        InvalidInput: the key is empty, longer than 128 characters or not text.
        IdempotencyKeyReused: the key names another write.
    """
    _check_key(key)
    now = now or utcnow()
    values = {"principal": principal, "key": key, "operation": operation}
    fresh = {"request_hash": digest, "result": None, "created_at": now}
    inserted = await session.execute(
        insert_for(session, IdempotencyKey)
        .values(**values, **fresh)
        .on_conflict_do_nothing(index_elements=["principal", "key"])
        .returning(IdempotencyKey.key)
    )
    if inserted.first() is not None:
        return None
    row = await session.get(IdempotencyKey, (principal, key), populate_existing=True)
    assert row is not None  # the conflict was with a committed row
    if row.created_at <= now - KEY_TTL:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.principal == principal, IdempotencyKey.key == key)
            .values(operation=operation, **fresh)
        )
        return None
    if row.operation != operation or row.request_hash != digest or row.result is None:
        raise IdempotencyKeyReused(key)
    return row.result


async def complete(
    session: AsyncSession, *, principal: str, key: str, result: Mapping[str, Any]
) -> None:
    """Record the result of the write that claimed ``key``, in the same transaction."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.principal == principal, IdempotencyKey.key == key)
        .values(result=dict(result))
    )


async def prune(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete keys older than :data:`KEY_TTL`; return how many."""
    cutoff = (now or utcnow()) - KEY_TTL
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at <= cutoff)
    )
    return int(getattr(result, "rowcount", 0) or 0)
