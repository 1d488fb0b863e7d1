"""Engines and session factories. Nothing here connects until first use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

__all__ = ["SessionFactory", "create_engine", "create_session_factory"]

SessionFactory = async_sessionmaker[AsyncSession]

# Writers wait this long for SQLite's single write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 15_000


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Build an async engine for ``url`` (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``).

    SQLite gets WAL mode, a busy timeout and ``BEGIN IMMEDIATE`` transactions:
    a deferred transaction that reads and then writes can fail at once with
    ``database is locked`` when another writer holds the lock, instead of waiting.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        # SQLite has one writer at a time. Contending connections wait in
        # SQLite's busy handler, which sleeps in growing steps (up to 100 ms);
        # queueing for the one pooled connection instead costs nothing.
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_timeout", 60)
        engine = _create_async_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return _create_async_engine(url, **kwargs)


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions that keep loaded attributes after commit (results outlive the transaction)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
