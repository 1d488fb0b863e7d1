"""Migrations build the schema the models describe, and go down cleanly."""

from __future__ import annotations

import asyncio
import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from db.migrate import downgrade, upgrade
from db.models import Base
from db.sessions import create_engine

URGENCY_INDEX = "ix_user_status_urgency"


def _compared(item: object, name: str | None, *_: object) -> bool:
    # The urgency index is an expression index: PostgreSQL reflects it in a
    # normalised spelling and SQLite not at all (SQLite's spelling is its own,
    # revision 0006), so autogenerate cannot compare it; test_urgency_index_exists
    # checks it.
    return name != URGENCY_INDEX


async def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn: object) -> list[object]:
                opts = {"include_object": _compared}
                context = MigrationContext.configure(sync_conn, opts=opts)  # type: ignore[arg-type]
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=f".*\\b{URGENCY_INDEX}\\b")
                    return list(compare_metadata(context, Base.metadata))

            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_matches_models_and_downgrade_removes_everything(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    assert await _diff(database_url) == []
    await asyncio.to_thread(downgrade, database_url, "base")
    assert await _tables(database_url) == {"alembic_version"}


async def test_urgency_index_exists(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    # SQLAlchemy reflects no SQLite expression index: ask SQLite itself.
    query = (
        "SELECT indexname FROM pg_indexes WHERE tablename = 'user_status'"
        if database_url.startswith("postgresql")
        else "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'user_status'"
    )
    try:
        async with engine.connect() as conn:
            names = set((await conn.execute(text(query))).scalars())
    finally:
        await engine.dispose()
    assert URGENCY_INDEX in names
