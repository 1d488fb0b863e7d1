"""The source of truth: tables, sessions, and keyword-only query and write functions.

This package imports nothing else of the project.
"""

from . import (
    activities,
    checkins,
    escalations,
    idempotency,
    leases,
    outbox,
    overview,
    payloads,
    snapshots,
    statuses,
)
from .models import Activity, AlertLevel, OutboxEntry, OutboxKind, UserStatus, utcnow
from .sessions import SessionFactory, create_engine, create_session_factory
from .validation import InvalidInput

__all__ = [
    "Activity",
    "AlertLevel",
    "InvalidInput",
    "OutboxEntry",
    "OutboxKind",
    "SessionFactory",
    "UserStatus",
    "activities",
    "checkins",
    "create_engine",
    "create_session_factory",
    "escalations",
    "idempotency",
    "leases",
    "outbox",
    "overview",
    "payloads",
    "snapshots",
    "statuses",
    "utcnow",
]
