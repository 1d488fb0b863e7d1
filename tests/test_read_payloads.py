"""db.activities.recent_payloads (the query path's read) gives what recent's ORM rows give."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from db import activities, create_engine, create_session_factory
from db.migrate import upgrade
from db.payloads import activity_payload


async def test_payloads_are_those_of_the_orm_rows(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    start = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    try:
        async with sessions.begin() as session:
            for i in range(7):
                await activities.add(
                    session,
                    user_id="u1",
                    type="note" if i % 2 else "check_in",
                    description=f"é {i}",
                    metadata={"i": i, "nested": {"x": [1, 2.5, None]}},
                    # Two share a timestamp: the id breaks the tie.
                    timestamp=start + timedelta(seconds=i // 2, microseconds=i),
                )
            await activities.add(session, user_id="u2", type="note")
        async with sessions() as session:
            pages = [
                {"first": 3},
                {"first": 100},
                {"first": 2, "types": ["note"]},
                {"first": 5, "types": []},
            ]
            first_page = await activities.recent(session, user_id="u1", first=3)
            last = first_page.rows[-1]
            after = activities.ActivityKey(timestamp=last.timestamp, id=last.id)
            pages.append({"first": 3, "after": after})
            for page in pages:
                orm = await activities.recent(session, user_id="u1", **page)  # type: ignore[arg-type]
                expected = [activity_payload(row) for row in orm.rows]
                got = await activities.recent_payloads(session, user_id="u1", **page)  # type: ignore[arg-type]
                assert got == (expected, orm.has_next), page
                assert [list(p) for p in got[0]] == [list(p) for p in expected]
            assert (await activities.recent_payloads(session, user_id="u1", first=100))[0]
    finally:
        await engine.dispose()
