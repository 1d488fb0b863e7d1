"""Migrations build the schema the models describe, and go down cleanly."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from db.migrate import downgrade, upgrade
from db.models import Base
from db.sessions import create_engine


async def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn: object) -> list[object]:
                context = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
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
