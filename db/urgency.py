"""Urgency order of user statuses: the sort key of the care-team overview.

A status is more urgent the higher its alert level (EMERGENCY, ALERT,
WARNING, NONE), then the sooner its ``next_due`` (none: last), then by user
id. Alert levels are stored as strings, whose order is not the level order,
so the key is computed by two SQL expressions that an expression index
(``ix_user_status_urgency``: revision 0004 on PostgreSQL, 0006 on SQLite) holds
verbatim: the query must spell them exactly as the index does for the planner
to use it, which is why they compile to fixed SQL text rather than to bound
parameters. They compile unqualified, so in a query over a subquery of
user_status rows they name the subquery's columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import SmallInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from .models import DUE_KEY_SQL, URGENCY_SQL, AlertLevel, UTCDateTime

__all__ = ["DUE_NEVER", "DueKey", "Urgency", "due_key_sql", "rank", "urgency_sql"]

#: Stands in for "no nextDue" in the key: later than any real deadline.
# Not datetime.max: asyncpg sends that as PostgreSQL's infinity.
DUE_NEVER = datetime(9999, 12, 31, tzinfo=UTC)

_LEVELS = list(AlertLevel)


def rank(level: AlertLevel) -> int:
    """0 for the most urgent level (EMERGENCY) up to 3 for NONE."""
    return len(_LEVELS) - 1 - _LEVELS.index(level)


def urgency_sql() -> str:
    """``CASE alert_level ...``: :func:`rank` of the stored level."""
    return URGENCY_SQL


def due_key_sql(dialect: str) -> str:
    """``COALESCE(next_due, DUE_NEVER)`` in the dialect's timestamp form."""
    if dialect == "postgresql":
        return DUE_KEY_SQL
    # SQLite stores naive UTC text in this form (UTCDateTime), so text order is time order.
    return "COALESCE(next_due, '9999-12-31 00:00:00.000000')"


class Urgency(ColumnElement[int]):
    """The rank of a row's alert level, as :func:`urgency_sql`."""

    inherit_cache = True
    type = SmallInteger()


class DueKey(ColumnElement[datetime]):
    """A row's ``next_due``, or :data:`DUE_NEVER` without one, as :func:`due_key_sql`."""

    inherit_cache = True
    type = UTCDateTime()


@compiles(Urgency)
def _urgency(element: Urgency, compiler: Any, **kw: Any) -> str:
    return urgency_sql()


@compiles(DueKey)
def _due_key(element: DueKey, compiler: Any, **kw: Any) -> str:
    return due_key_sql(compiler.dialect.name)
