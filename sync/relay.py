"""The outbox relay: mirrors committed changes to the realtime store, then publishes them.

Delivery rules:

* Per user, entries go out in sequence order. An entry is attempted only when
  it is the user's lowest unpublished one, so a failed entry holds back the
  rest of *its* user's stream and nobody else's.
* A failure (store or broker) never reaches the writer. It is logged with the
  user id and outbox id, and the entry is retried with capped exponential
  backoff and jitter until it goes through.
* Store writes are idempotent by sequence number and subscribers drop
  repeated sequence numbers, so an entry relayed twice (a crash between
  publishing and marking) is harmless.
* The store does not wait for the broker: entries held back behind one
  that failed to publish are still applied to the store
  (:class:`sync.mirror.StoreMirror`), so queries see every committed write
  during a broker outage.

Collaborators, one job each: :class:`sync.leadership.Leadership` (who relays),
:class:`sync.mirror.StoreMirror` (the store), a :class:`Publisher` (events out),
:class:`sync.writes.Waiters` (writers waiting for their entries).

Several instances (PostgreSQL): only the lease holder relays, hears other
instances' commits through the lease connection, and publishes each entry
once, each user's in order. A holder whose lease connection dies stops between
two entries; the next starts from what is marked published, and what the old
one published twice is dropped by the rules above. SQLite: one process relays.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from contextlib import suppress
from datetime import timedelta
from typing import Protocol, Self

from db import OutboxEntry, SessionFactory, idempotency, outbox, utcnow

from .events import ChangeEvent
from .leadership import Leadership
from .metrics import RelayMetrics
from .mirror import StoreMirror
from .stores import StoreUnavailable
from .subscribers import ChannelError
from .writes import Waiters, Writer

__all__ = ["Publisher", "Relay"]

logger = logging.getLogger(__name__)

# Failures that mean a service is away, logged without a traceback.
_OUTAGES = (StoreUnavailable, ChannelError, OSError, TimeoutError)
# Seconds an in-flight round may take to finish on exit.
STOP_GRACE = 5.0
# Seconds between prunes of published entries older than the retention.
PRUNE_INTERVAL = 60.0


class Publisher(Protocol):
    """Where the relay sends each change once it is in the store."""

    async def publish(self, event: ChangeEvent) -> None:
        """Send ``event`` to its subscribers. Raises on failure; the relay retries."""


class Relay:
    """Background task that drains the outbox. Start it with ``async with``.

    Args:
        sessions: database session factory.
        mirror: applies entries to the realtime store.
        publisher: where events are published.
        leadership: whether this process relays (default: always, one process).
        waiters: told which entries were published, for writers that wait.
        batch_size: entries claimed per round.
        poll_interval: seconds between rounds when nobody calls :meth:`notify`
            (writes of other processes are found this way).
        retry_base, retry_max: backoff in seconds: ``retry_base * 2**attempts``
            capped at ``retry_max``, times a jitter factor in [0.5, 1.5).
        retention: seconds a published entry is kept (replay needs them).
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        mirror: StoreMirror,
        publisher: Publisher,
        leadership: Leadership | None = None,
        waiters: Waiters | None = None,
        metrics: RelayMetrics | None = None,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        retry_base: float = 0.2,
        retry_max: float = 30.0,
        retention: float = 24 * 3600.0,
    ) -> None:
        self._sessions = sessions
        self._mirror = mirror
        self._publisher = publisher
        self.leadership = leadership or Leadership()
        self.waiters = waiters or Waiters()
        self.metrics = metrics or RelayMetrics(registry=None)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.retention = retention
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_prune = 0.0
        # Rounds started and finished, and what the last finished one claimed (for flush).
        self._started = 0
        self._finished = 0
        self._claimed = 0
        self._round_done = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            # Let an in-flight round finish: cancelling it mid-connect would leave the
            # driver's worker thread completing after the event loop is gone.
            self._stopping = True
            self._wake.set()
            with suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE)
            self._task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._task
        self.waiters.release_all()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def leading(self) -> bool:
        """Whether this process relays (see :class:`Leadership`)."""
        return self.leadership.leading

    def notify(self) -> None:
        """Ask for a round now (a local write has committed)."""
        self._wake.set()

    def writer(self, *, timeout: float) -> Writer:
        """A :class:`Writer` whose transactions wait up to ``timeout`` for this relay."""
        return Writer(
            sessions=self._sessions,
            leadership=self.leadership,
            waiters=self.waiters,
            wake=self.notify,
            timeout=timeout,
        )

    async def _run(self) -> None:
        delay = self.retry_base
        while not self._stopping:
            self._wake.clear()
            if not await self.leadership.ensure(on_notify=self.notify):
                # Another process relays (or the database is away): try again a
                # poll interval later. Local writes do not wake this loop early;
                # the holder hears of them through the database.
                await asyncio.sleep(self.poll_interval)
                continue
            self._started += 1
            try:
                done = await self.run_once()
                self._finished, self._claimed = self._started, done
                self._round_done.set()
                await self._maybe_prune()
                delay = self.retry_base
            except Exception:
                logger.exception("outbox relay round failed; retrying in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            if done >= self.batch_size:
                continue
            await self._idle()

    async def flush(self, timeout: float) -> bool:
        """Publish every entry due now, before a shutdown; whether none is left in time.

        Returns at once where another process relays (PostgreSQL): the lease
        holder publishes what this one committed. Entries waiting for a retry
        (the store or broker is away) are not due and stay for the next relay.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.running and self.leading:
            # A round that starts after this point sees every commit made before it.
            wanted = self._started + 1
            self.notify()
            while self._finished < wanted:
                self._round_done.clear()
                left = deadline - loop.time()
                if left <= 0:
                    return False
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._round_done.wait(), left)
            if self._claimed == 0:
                return True
        return True

    async def _idle(self) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def run_once(self) -> int:
        """One round: relay what is due. Returns the number of entries claimed."""
        async with self._sessions() as session:
            entries = await outbox.pending(session, now=utcnow(), limit=self.batch_size)
            by_user: dict[str, list[OutboxEntry]] = defaultdict(list)
            for entry in entries:
                by_user[entry.user_id].append(entry)
            heads = await outbox.pending_heads(session, user_ids=list(by_user))
        published: list[OutboxEntry] = []
        failed: list[tuple[OutboxEntry, BaseException]] = []
        for user_id, user_entries in by_user.items():
            if user_entries[0].seq != heads.get(user_id):
                # An earlier entry of this user waits for its retry time.
                await self._apply_ahead(user_id, user_entries)
                continue
            failure = await self._relay_user(user_entries, published)
            if failure is not None:
                failed.append(failure)
        await self._record(published, failed)
        if self.leading:
            for entry, _ in failed:
                self.waiters.resolve(await self._mirror.apply_held_back(entry), False)
        # Entries held back behind a failed one will not go out this round:
        # writers waiting on them should not wait for their timeout.
        done = {entry.id for entry in published}
        self.waiters.resolve([entry.id for entry in entries if entry.id not in done], False)
        return len(entries)

    async def _relay_user(
        self, entries: Sequence[OutboxEntry], published: list[OutboxEntry]
    ) -> tuple[OutboxEntry, BaseException] | None:
        """Relay one user's claimed entries in order; the entry that failed, if one did."""
        expected = entries[0].seq
        for i, entry in enumerate(entries):
            if entry.seq != expected:
                # A gap: the entry in between was committed but was not due when
                # claimed (its next_attempt_at was stamped before it took the
                # sequence lock). Never publish past it; the next round will.
                return None
            expected += 1
            if not self.leading:
                # The lease was lost mid-round: the next holder takes it from here.
                return None
            event = ChangeEvent.from_entry(entry)
            try:
                await self._mirror.apply(event)
                await self._publisher.publish(event)
            except Exception as exc:
                # Broker drivers' errors share no base class, so every failure is
                # retried and holds back only this user; a failure that is not an
                # outage (a bug, a bad entry) also gets its traceback logged.
                logger.warning(
                    "relay of outbox entry %s (user %r, seq %s) failed: %r",
                    entry.id,
                    entry.user_id,
                    entry.seq,
                    exc,
                    exc_info=not isinstance(exc, _OUTAGES),
                )
                await self._apply_ahead(entry.user_id, entries[i + 1 :])
                return entry, exc
            published.append(entry)
        self._mirror.caught_up(entries[0].user_id)
        return None

    async def _apply_ahead(self, user_id: str, entries: Sequence[OutboxEntry]) -> None:
        if self.leading:
            await self._mirror.apply_ahead(user_id, entries)

    def _retry_delay(self, attempts: int) -> float:
        delay = min(self.retry_max, self.retry_base * 2.0 ** min(attempts, 30))
        return delay * random.uniform(0.5, 1.5)

    async def _record(
        self,
        published: Sequence[OutboxEntry],
        failed: Sequence[tuple[OutboxEntry, BaseException]],
    ) -> None:
        now = utcnow()
        for entry in published:
            self.metrics.observe_published(entry.committed_at, now)
        for _ in failed:
            self.metrics.observe_failure()
        published_ids = [entry.id for entry in published]
        if published or failed:
            async with self._sessions.begin() as session:
                await outbox.mark_published(session, entry_ids=published_ids, at=now)
                for entry, exc in failed:
                    await outbox.mark_failed(
                        session,
                        user_id=entry.user_id,
                        entry_id=entry.id,
                        error=repr(exc),
                        retry_at=now + timedelta(seconds=self._retry_delay(entry.attempts)),
                    )
        self.waiters.resolve(published_ids, True)
        self.waiters.resolve([entry.id for entry, _ in failed], False)

    async def _maybe_prune(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_prune < PRUNE_INTERVAL:
            return
        self._last_prune = loop.time()
        await self.prune()

    async def prune(self) -> int:
        """Delete published entries older than ``retention`` (returns how many) and old keys."""
        async with self._sessions.begin() as session:
            pruned = await outbox.prune(
                session, published_before=utcnow() - timedelta(seconds=self.retention)
            )
            await idempotency.prune(session)  # housekeeping too, where the relay leads
        if pruned:
            logger.info("pruned %d published outbox entries", pruned)
        return pruned
