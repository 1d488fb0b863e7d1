"""The overview is indexed: query plans of db.overview.page over many users.

Each test fills user_status with generated rows, runs ``page`` for the first
page, a page deep into the order and every filter, captures the statements
it sent, and asks the database for their plans. With 200,000 users on
PostgreSQL every scan of user_status must be an Index Scan of the urgency
index that reads at most ``first + 1`` rows per level (so the cost does not
grow with the table), with no Seq Scan and, without filters, no Sort.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import create_engine, create_session_factory
from db.migrate import upgrade
from db.models import AlertLevel
from db.overview import StatusKey, page

INDEX = "ix_user_status_urgency"
FIRST = 50
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# Deep into the order: a NONE user due at NOW, past every more urgent user.
DEEP = StatusKey(3, NOW, "u100000")

# (name, page arguments, whether the plan may merge per-level scans with a small sort)
SHAPES: list[tuple[str, dict[str, Any], bool]] = [
    ("first page", {}, False),
    ("keyset page", {"after": DEEP}, False),
    ("one level", {"alert_levels": [AlertLevel.ALERT], "after": StatusKey(1, NOW, "u5")}, False),
    ("levels", {"alert_levels": [AlertLevel.EMERGENCY, AlertLevel.WARNING]}, True),
    ("overdue", {"overdue": True, "after": StatusKey(2, NOW - timedelta(hours=6), "u5")}, True),
    ("not overdue", {"overdue": False, "after": DEEP}, True),
    ("overdue level", {"overdue": True, "alert_levels": [AlertLevel.NONE]}, False),
]

# Levels 1 % EMERGENCY, 2 % ALERT, 7 % WARNING, the rest NONE; due times spread
# over two days around NOW; one user in ten has no next_due.
PG_ROWS = 200_000
PG_FILL = f"""
INSERT INTO user_status (user_id, next_due, alert_level, version, seq, updated_at)
SELECT 'u' || g,
       CASE WHEN g % 10 = 0 THEN NULL
            ELSE TIMESTAMPTZ '{NOW.isoformat()}' + ((g * 7919) % 2880 - 1440) * INTERVAL '1 minute'
       END,
       CASE WHEN g % 100 = 1 THEN 'EMERGENCY' WHEN g % 100 < 4 THEN 'ALERT'
            WHEN g % 100 < 11 THEN 'WARNING' ELSE 'NONE' END,
       1, 1, TIMESTAMPTZ '{NOW.isoformat()}'
FROM generate_series(1, {PG_ROWS}) AS g
"""


class Statements:
    """The statements and parameters an engine sends, as sent."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sent: list[tuple[str, Any]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.sent.append((statement, parameters))


async def _run(engine: AsyncEngine, **args: Any) -> tuple[str, Any]:
    statements = Statements(engine)
    async with create_session_factory(engine)() as session:
        result = await page(session, first=FIRST, now=NOW, **args)
    event.remove(engine.sync_engine, "before_cursor_execute", statements._record)
    assert len(result.rows) == FIRST, "the generated data fills every page"
    # Connection setup (SQLite's PRAGMAs) is sent too: keep the page's query.
    [sent] = [(sql, params) for sql, params in statements.sent if "user_status" in sql]
    return sent


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.fixture
async def pg_engine(private_postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(private_postgres_url)
    async with engine.begin() as conn:
        await conn.execute(text(PG_FILL))
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE user_status"))
    try:
        yield engine
    finally:
        await engine.dispose()


async def _pg_plans(engine: AsyncEngine, statement: str, params: Any) -> list[dict[str, Any]]:
    """The statement's plan as run (EXPLAIN ANALYZE), and its generic plan.

    asyncpg prepares statements, and PostgreSQL may switch a prepared
    statement to a generic plan (parameters unknown) after five runs: both
    must be indexed.
    """
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        analyzed = await raw.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *params)
        await raw.execute(f"PREPARE overview_page AS {statement}")
        try:
            await raw.execute("SET plan_cache_mode = force_generic_plan")
            arguments = ", ".join(map(_literal, params))
            generic = await raw.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE overview_page({arguments})"
            )
        finally:
            await raw.execute("DEALLOCATE overview_page")
            await raw.execute("RESET plan_cache_mode")
    return [_decoded(analyzed)[0]["Plan"], _decoded(generic)[0]["Plan"]]


def _decoded(value: Any) -> Any:
    # SQLAlchemy's asyncpg connections decode json themselves; a bare one would not.
    return json.loads(value) if isinstance(value, str) else value


def _literal(value: object) -> str:
    # EXECUTE takes no parameters; a generic plan does not look at these values anyway.
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    assert isinstance(value, str)
    return "'" + value.replace("'", "''") + "'"


def format_plan(plan: dict[str, Any], depth: int = 0) -> str:
    """An indented outline of a JSON plan, for failure messages and notes."""
    line = "  " * depth + plan["Node Type"]
    if "Index Name" in plan:
        line += f" using {plan['Index Name']}"
    for key in ("Index Cond", "Filter", "Sort Key", "Actual Rows"):
        if key in plan:
            line += f"\n{'  ' * depth}    {key}: {plan[key]}"
    return "\n".join([line, *(format_plan(child, depth + 1) for child in plan.get("Plans", []))])


@pytest.mark.timeout(180)
async def test_postgresql_pages_are_index_scans(pg_engine: AsyncEngine) -> None:
    for name, args, merges in SHAPES:
        statement, params = await _run(pg_engine, **args)
        for plan in await _pg_plans(pg_engine, statement, params):
            _check_pg_plan(name, plan, merges)


def _check_pg_plan(name: str, plan: dict[str, Any], merges: bool) -> None:
    outline = f"{name}:\n{format_plan(plan)}"
    nodes = list(_nodes(plan))
    scans = [node for node in nodes if node.get("Relation Name") == "user_status"]
    assert scans, outline
    for scan in scans:
        assert scan["Node Type"] == "Index Scan", outline
        assert scan["Index Name"] == INDEX, outline
        # Every condition bounds the index range; nothing is read to be dropped.
        assert "Filter" not in scan, outline
        if "Actual Rows" in scan:
            assert scan["Actual Rows"] <= FIRST + 1, outline
    assert not any(node["Node Type"] == "Seq Scan" for node in nodes), outline
    sorts = [node for node in nodes if node["Node Type"] == "Sort"]
    if merges:
        # Only the merge of the per-level pages is sorted: at most 4 x (FIRST + 1) rows.
        assert len(sorts) <= 1, outline
        for sort in sorts:
            assert all(n["Node Type"] != "Sort" for n in list(_nodes(sort))[1:]), outline
            assert sort.get("Actual Rows", 0) <= FIRST + 1, outline
            below = [n for n in _nodes(sort) if n.get("Relation Name") == "user_status"]
            assert len(below) <= len(AlertLevel), outline
    else:
        assert sorts == [], outline


SQLITE_ROWS = 20_000
SQLITE_FILL = f"""
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {SQLITE_ROWS})
INSERT INTO user_status (user_id, next_due, alert_level, version, seq, updated_at)
SELECT 'u' || n,
       CASE WHEN n % 10 = 0 THEN NULL
            ELSE strftime('%Y-%m-%d %H:%M:%f000', '{NOW:%Y-%m-%d %H:%M:%S}',
                          ((n * 7919) % 2880 - 1440) || ' minutes')
       END,
       CASE WHEN n % 100 = 1 THEN 'EMERGENCY' WHEN n % 100 < 4 THEN 'ALERT'
            WHEN n % 100 < 11 THEN 'WARNING' ELSE 'NONE' END,
       1, 1, '{NOW:%Y-%m-%d %H:%M:%S}.000000'
FROM g
"""


@pytest.fixture
async def sqlite_engine(tmp_path: Any) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path}/overview.db"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(SQLITE_FILL))
        await conn.execute(text("ANALYZE"))
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_sqlite_pages_use_the_index(sqlite_engine: AsyncEngine) -> None:
    for name, args, merges in SHAPES:
        _check_sqlite_plan(name, args, merges, await _sqlite_plan(sqlite_engine, **args))


async def _sqlite_plan(engine: AsyncEngine, **args: Any) -> list[str]:
    statement, params = await _run(engine, **args)
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.execute(f"EXPLAIN QUERY PLAN {statement}", params) as cursor:
            return [str(row[3]) for row in await cursor.fetchall()]


def _check_sqlite_plan(name: str, args: dict[str, Any], merges: bool, steps: list[str]) -> None:
    reads = [step for step in steps if "user_status" in step]
    assert reads, (name, steps)
    # SEARCH: a range of the index; SCAN ... USING INDEX: the index read in order.
    assert all(f"USING INDEX {INDEX}" in step for step in reads), (name, steps)
    # SQLite merges per-level ranges after any cursor (it seeks within one level only).
    if not merges and (args.get("after") is None or args.get("alert_levels")):
        assert not any("TEMP B-TREE" in step for step in steps), (name, steps)
    if args.get("after") is not None or args.get("alert_levels"):
        assert all(step.startswith("SEARCH") for step in reads), (name, steps)
    if args.get("after") is not None:
        # Seeks to the cursor in its level: a range on the due key, not only the level.
        assert any("<expr>=? AND <expr>>?" in step for step in reads), (name, steps)
