"""Who may resolve each root field: the one place the rules live and are enforced.

Every field of Query, Mutation and Subscription declares one :class:`Rule`
with ``extensions=[Authorize(RULE)]``; :func:`check_every_root_field_guarded`
refuses to build a schema with an unguarded root field, so a new field is
denied until it is given a rule.

========================  ========================  ==========================
Field                     user (role ``user``)      service / admin
========================  ========================  ==========================
recentActivities          own ``userId`` only       any user
userStatus                own ``userId`` only       any user
activityAdded             own ``userId`` only       any user
userStatusChanged         own ``userId`` only       any user
recordCheckIn             own ``input.userId``      any user
addActivity               no                        yes
updateUserStatus          no                        yes
activityFeed              no                        admin only
activityFeedAdded         no                        admin only
========================  ========================  ==========================

A refusal is a GraphQL error on that field: ``extensions.code`` is
``UNAUTHENTICATED`` without credentials and ``FORBIDDEN`` otherwise. For a
subscription the check runs before the event stream is created, so the client
gets an ``error`` message for that operation (graphql-transport-ws PROTOCOL.md,
"Error") and the socket stays open.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.extensions.field_extension import AsyncExtensionResolver, SyncExtensionResolver

from .auth import Principal, Role
from .codes import ErrorCode

__all__ = [
    "ADMIN_ONLY",
    "OWN_USER",
    "OWN_USER_INPUT",
    "WRITERS",
    "Authorize",
    "Rule",
    "check_every_root_field_guarded",
]


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may resolve a field.

    Attributes:
        roles: roles allowed whatever the arguments.
        owner: the argument path (Python names) holding a user id, e.g.
            ``("input", "user_id")``; a ``user`` principal is allowed when it
            equals their own id. ``None``: users are never allowed.
        summary: who is allowed, for error messages.
    """

    roles: frozenset[Role]
    owner: tuple[str, ...] | None
    summary: str

    def check(self, principal: Principal | None, arguments: dict[str, Any]) -> None:
        """Raise unless ``principal`` may resolve the field with these ``arguments``.

        Raises:
            GraphQLError: ``UNAUTHENTICATED`` or ``FORBIDDEN`` in ``extensions.code``.
        """
        if principal is None:
            raise GraphQLError(
                "authentication required: send 'Authorization: Bearer <token>'",
                extensions={"code": ErrorCode.UNAUTHENTICATED},
            )
        if principal.role in self.roles:
            return
        if self.owner is not None and principal.role is Role.USER:
            user_id = _argument(arguments, self.owner)
            if isinstance(user_id, str) and principal.may_act_for(user_id):
                return
        raise GraphQLError(f"forbidden: {self.summary}", extensions={"code": ErrorCode.FORBIDDEN})


_SERVICE_OR_ADMIN = frozenset({Role.SERVICE, Role.ADMIN})

OWN_USER = Rule(_SERVICE_OR_ADMIN, ("user_id",), "a user may only access their own userId")
OWN_USER_INPUT = Rule(
    _SERVICE_OR_ADMIN, ("input", "user_id"), "a user may only write their own input.userId"
)
WRITERS = Rule(_SERVICE_OR_ADMIN, None, "needs role service or admin")
ADMIN_ONLY = Rule(frozenset({Role.ADMIN}), None, "needs role admin")


def _argument(arguments: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = arguments
    for name in path:
        value = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
    return value


class Authorize(FieldExtension):
    """Field extension that applies a :class:`Rule` before the resolver runs.

    The principal is ``info.context.principal``: from the ``Authorization``
    header over HTTP, from ``connection_init`` over WebSocket.
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def resolve(
        self, next_: SyncExtensionResolver, source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        self.rule.check(info.context.principal, kwargs)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: AsyncExtensionResolver, source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        self.rule.check(info.context.principal, kwargs)
        result = next_(source, info, **kwargs)
        # A subscription resolver returns its async generator unawaited.
        return result if inspect.isasyncgen(result) else await result


def check_every_root_field_guarded(roots: Iterable[type | None]) -> None:
    """Raise ``TypeError`` naming any root field without exactly one :class:`Authorize`."""
    unguarded: list[str] = []
    for root in roots:
        if root is None:
            continue
        definition = root.__strawberry_definition__  # type: ignore[attr-defined]
        for field in definition.fields:
            guards: Collection[FieldExtension] = [
                e for e in field.extensions if isinstance(e, Authorize)
            ]
            if len(guards) != 1:
                unguarded.append(f"{definition.name}.{field.python_name}")
    if unguarded:
        raise TypeError(f"root fields need exactly one Authorize rule: {', '.join(unguarded)}")
