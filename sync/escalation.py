"""The escalator: raises the alert level of users whose check-in is overdue.

Deadlines come from the database (:func:`db.escalations.next_deadline`), never
from timers kept in memory alone, so a restart or another instance picks up
exactly where the last one stopped: after downtime each overdue user rises at
once to the level their lateness reaches, in one transaction.

It runs only while this process leads (:class:`sync.leadership.Leadership`,
the relay's lease on PostgreSQL). Even two escalators at once would write each
step once: a write applies only if the status still has the version it was
read with, so a check-in (or another escalator) that commits first wins.

Between deadlines it sleeps until the earliest one, at most ``check_interval``
seconds, and wakes early when the relay publishes a status whose ``next_due``
is sooner (:meth:`Escalator.watching`), which covers a ``next_due`` already in
the past at write time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from typing import Self

from db import OutboxKind, SessionFactory, UserStatus, escalations, utcnow
from db.escalations import Policy
from db.statuses import VersionConflict

from .events import ChangeEvent
from .leadership import Leadership
from .relay import Publisher

__all__ = ["Escalator"]

logger = logging.getLogger(__name__)

# Seconds a stopping escalator's in-flight round may take.
STOP_GRACE = 5.0
# Seconds to wait after a failed round (the database is away).
RETRY_DELAY = 1.0


class Escalator:
    """Background task that escalates missed check-ins. Start it with ``async with``.

    Args:
        sessions: database session factory.
        policy: the escalation steps; empty: ``async with`` starts nothing.
        leadership: whether this process escalates (default: always).
        wake: called after each committed escalation (the relay's ``notify``).
        check_interval: longest sleep, in seconds, between looks at the deadlines.
        standby_interval: seconds between looks at :attr:`Leadership.leading`
            while another process leads.
        batch_size: users escalated per round.
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        policy: Policy,
        leadership: Leadership | None = None,
        wake: Callable[[], None] | None = None,
        check_interval: float = 2.0,
        standby_interval: float = 0.5,
        batch_size: int = 100,
    ) -> None:
        self._sessions = sessions
        self.policy = policy
        self.leadership = leadership or Leadership()
        self.wake = wake or (lambda: None)
        self.check_interval = check_interval
        self.standby_interval = standby_interval
        self.batch_size = batch_size
        self._woken = asyncio.Event()
        self._planned: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def __aenter__(self) -> Self:
        if self.policy:
            self._task = asyncio.create_task(self._run(), name="escalator")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is None:
            return
        self._stopping = True
        self._woken.set()
        with suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE)
        self._task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def notify(self, next_due: datetime | None = None) -> None:
        """Look at the deadlines now (if ``next_due`` is given: only if it is sooner)."""
        if next_due is None or self._planned is None or next_due < self._planned:
            self._woken.set()

    def watching(self, publisher: Publisher) -> Publisher:
        """``publisher``, telling this escalator of every published ``next_due``."""
        return _DueWatch(publisher, self)

    async def _run(self) -> None:
        while not self._stopping:
            self._woken.clear()
            if not self.leadership.leading:
                self._planned = None
                await self._sleep(self.standby_interval)
                continue
            # Unknown while the round reads: any published next_due wakes the next one.
            self._planned = None
            try:
                deadline = await self.run_once()
            except Exception:
                logger.exception("escalation round failed; retrying in %.1fs", RETRY_DELAY)
                await self._sleep(RETRY_DELAY)
                continue
            self._planned = deadline
            wait = self.check_interval
            if deadline is not None:
                wait = min(wait, (deadline - utcnow()).total_seconds() + 0.001)
            await self._sleep(max(wait, 0.0))

    async def _sleep(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), seconds)

    async def run_once(self) -> datetime | None:
        """Escalate every user who is due now; return the next deadline (``None``: none)."""
        now = utcnow()
        async with self._sessions() as session:
            rows = await escalations.due(
                session, policy=self.policy, now=now, limit=self.batch_size
            )
        for status in rows:
            if self._stopping or not self.leadership.leading:
                return None
            await self.escalate(status, now=utcnow())
        if len(rows) >= self.batch_size:
            return now
        async with self._sessions() as session:
            return await escalations.next_deadline(session, policy=self.policy)

    async def escalate(self, status: UserStatus, *, now: datetime) -> bool:
        """Escalate ``status`` as read; ``False`` when it changed meanwhile or nothing is due."""
        try:
            async with self._sessions.begin() as session:
                written = await escalations.escalate(
                    session, status=status, policy=self.policy, now=now
                )
        except VersionConflict:
            logger.debug("status of %r changed before its escalation", status.user_id)
            return False
        if written is None:
            return False
        logger.info("escalated %r to %s", status.user_id, written.alert_level.value)
        self.wake()
        return True


class _DueWatch:
    """A publisher that also wakes the escalator for each status it sends."""

    def __init__(self, inner: Publisher, escalator: Escalator) -> None:
        self._inner = inner
        self._escalator = escalator

    async def publish(self, event: ChangeEvent) -> None:
        await self._inner.publish(event)
        if event.kind is not OutboxKind.STATUS:
            return
        if event.payload is None:
            # Travelled as a reference: its next_due is unknown here.
            self._escalator.notify()
        elif (next_due := event.status["next_due"]) is not None:
            self._escalator.notify(datetime.fromisoformat(next_due))
