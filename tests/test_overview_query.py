"""The overview query (db.overview.page) against its definition, on SQLite and PostgreSQL.

The definition is the plain statement below: the filters as written in the
API (``next_due < now``), one row comparison on the whole key, one ORDER BY.
``page`` spells it per level so that an index bounds every scan; its pages
must be the same rows, in the same order, for every filter and cursor.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from db import create_engine, create_session_factory
from db.migrate import upgrade
from db.models import AlertLevel, UserStatus
from db.overview import StatusKey, page
from db.urgency import DueKey, Urgency, rank

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a fixed instant: `now` is passed in
MICROSECOND = timedelta(microseconds=1)


@pytest.fixture
async def session(database_url: str) -> AsyncIterator[AsyncSession]:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


def _status(user_id: str, level: AlertLevel, due: datetime | None) -> UserStatus:
    return UserStatus(
        user_id=user_id, alert_level=level, next_due=due, version=1, seq=1, updated_at=NOW
    )


async def _reference(
    session: AsyncSession,
    *,
    first: int,
    after: StatusKey | None,
    alert_levels: Sequence[AlertLevel] | None,
    overdue: bool | None,
) -> tuple[list[str], bool]:
    """The overview as defined: what ``page`` returned before it was split per level."""
    stmt = select(UserStatus)
    if alert_levels is not None:
        stmt = stmt.where(Urgency().in_(sorted({rank(level) for level in alert_levels})))
    if overdue is True:
        stmt = stmt.where(UserStatus.next_due < NOW)
    elif overdue is False:
        stmt = stmt.where(or_(UserStatus.next_due.is_(None), UserStatus.next_due >= NOW))
    if after is not None:
        stmt = stmt.where(tuple_(Urgency(), DueKey(), UserStatus.user_id) > tuple_(*after))
    stmt = stmt.order_by(Urgency(), DueKey(), UserStatus.user_id).limit(first + 1)
    rows = (await session.scalars(stmt)).all()
    return [row.user_id for row in rows[:first]], len(rows) > first


LEVEL_FILTERS: list[list[AlertLevel] | None] = [
    None,
    [],
    [AlertLevel.NONE],
    [AlertLevel.EMERGENCY, AlertLevel.ALERT],
    [AlertLevel.WARNING, AlertLevel.NONE],
    list(AlertLevel),
]


async def test_pages_equal_the_definition_for_every_filter_and_cursor(
    session: AsyncSession,
) -> None:
    rng = random.Random(13)
    # Ties on purpose: few distinct due times, some exactly now, some none.
    dues = [None, NOW, NOW - MICROSECOND, NOW + MICROSECOND] + [
        NOW + timedelta(minutes=m) for m in (-90, -5, 5, 60)
    ]
    session.add_all(
        _status(f"u{n:03d}", rng.choice(list(AlertLevel)), rng.choice(dues)) for n in range(120)
    )
    await session.commit()
    checked = 0
    for levels in LEVEL_FILTERS:
        for overdue in (None, True, False):
            after: StatusKey | None = None
            while True:
                args = {"first": 7, "after": after, "alert_levels": levels, "overdue": overdue}
                got = await page(session, now=NOW, **args)  # type: ignore[arg-type]
                expected = await _reference(session, **args)  # type: ignore[arg-type]
                assert ([row.user_id for row in got.rows], got.has_next) == expected, args
                checked += len(got.rows)
                if not got.has_next:
                    break
                after = StatusKey.of(got.rows[-1])
    assert checked > 120 * 3  # every user was paged through under several filters


async def test_overdue_means_strictly_before_now(session: AsyncSession) -> None:
    session.add_all(
        [
            _status("at-now", AlertLevel.NONE, NOW),
            _status("just-before", AlertLevel.NONE, NOW - MICROSECOND),
            _status("just-after", AlertLevel.NONE, NOW + MICROSECOND),
            _status("never", AlertLevel.NONE, None),
        ]
    )
    await session.commit()
    overdue = await page(session, overdue=True, now=NOW)
    assert [row.user_id for row in overdue.rows] == ["just-before"]
    others = await page(session, overdue=False, now=NOW)
    assert [row.user_id for row in others.rows] == ["at-now", "just-after", "never"]
    # One microsecond later, the user due at the old now is overdue too.
    later = await page(session, overdue=True, now=NOW + MICROSECOND)
    assert [row.user_id for row in later.rows] == ["just-before", "at-now"]
