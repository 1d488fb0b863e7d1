"""Exactly-once mutations: an input's ``idempotencyKey``, claimed in the write's transaction.

A mutation calls :func:`claim` first thing in its unit of work. When the
key names an earlier identical write, :attr:`Once.replay` holds that write's
result and the mutation returns it without writing; otherwise it writes and
calls :meth:`Once.remember` before the transaction commits. See
:mod:`db.idempotency` for why two concurrent retries make one write.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from db import idempotency

from .auth import Principal

__all__ = ["Once", "claim"]


@dataclass(slots=True)
class Once:
    """The outcome of a claim: a result to replay, or a write to remember."""

    session: AsyncSession
    principal: str
    key: str | None
    replay: dict[str, Any] | None = None

    async def remember(self, result: Mapping[str, Any]) -> None:
        """Store the result of the write (no-op without a key)."""
        if self.key is not None:
            await idempotency.complete(
                self.session, principal=self.principal, key=self.key, result=result
            )


def _caller(principal: Principal | None) -> str:
    # Keys of different callers never collide; nobody writes unauthenticated.
    return "anonymous" if principal is None else f"{principal.role.value}:{principal.user_id}"


def _arguments(value: object) -> dict[str, Any]:
    """The fields the client sent, the key left out (an omitted field differs from null)."""
    assert dataclasses.is_dataclass(value)
    return {
        field.name: getattr(value, field.name)
        for field in dataclasses.fields(value)
        if field.name != "idempotency_key" and getattr(value, field.name) is not strawberry.UNSET
    }


async def claim(
    session: AsyncSession, principal: Principal | None, operation: str, input: object
) -> Once:
    """Claim ``input.idempotency_key`` (if any) for ``operation`` in ``session``'s transaction.

    Raises:
        db.InvalidInput: a key of the wrong length.
        db.idempotency.IdempotencyKeyReused: the key names another write.
    """
    key: str | None = getattr(input, "idempotency_key", None)
    caller = _caller(principal)
    if key is None:
        return Once(session, caller, None)
    replay = await idempotency.claim(
        session,
        principal=caller,
        key=key,
        operation=operation,
        digest=idempotency.request_hash(operation, _arguments(input)),
    )
    return Once(session, caller, key, replay)
