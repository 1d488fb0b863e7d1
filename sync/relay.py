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
  that failed to publish are still applied to the store, so queries see
  every committed write during a broker outage.
* A store that no longer holds a user's earlier changes (a Redis restarted
  empty, an evicted user) cannot apply the next one to a known state; the
  relay then primes that user from a database snapshot, so the store
  converges by itself.

Several instances: with a :class:`db.leases.RelayLease` (PostgreSQL), only the
process holding the lease relays; the others retry every ``poll_interval``.
One relay publishes each entry once and each user's entries in order. The
holder hears other instances' commits through the lease connection, so their
entries go out without waiting for a poll. A holder whose lease connection
dies stops between two entries; the next holder starts from what is marked
published, and whatever the old one published twice is dropped by the rules
above. Without a lease (SQLite) the relay always runs: one process only.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Self

from db import OutboxEntry, SessionFactory, outbox, utcnow
from db.leases import RelayLease

from .channels import Channels
from .events import ChangeEvent
from .metrics import RelayMetrics
from .resync import prime_user
from .stores import RealtimeStore

__all__ = ["Relay"]

logger = logging.getLogger(__name__)


class Relay:
    """Background task that drains the outbox. Start it with ``async with``.

    Args:
        sessions: database session factory.
        store: the realtime store, or ``None`` when none is configured.
        channels: where events are published.
        batch_size: entries claimed per round.
        poll_interval: seconds between rounds when nobody calls :meth:`notify`
            (writes of other processes are found this way).
        retry_base, retry_max: backoff in seconds: ``retry_base * 2**attempts``
            capped at ``retry_max``, times a jitter factor in [0.5, 1.5).
        retention: seconds a published entry is kept (replay needs them).
        lease: when given, relay only while holding it (several instances);
            the caller closes it.
        lease_check_interval: seconds between liveness checks of the lease
            connection while held.
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        store: RealtimeStore | None,
        channels: Channels,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        retry_base: float = 0.2,
        retry_max: float = 30.0,
        retention: float = 24 * 3600.0,
        metrics: RelayMetrics | None = None,
        lease: RelayLease | None = None,
        lease_check_interval: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._channels = channels
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.retention = retention
        self.metrics = metrics or RelayMetrics(registry=None)
        self._wake = asyncio.Event()
        self._waiters: dict[int, list[asyncio.Future[bool]]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_prune = 0.0
        self._lease = lease
        self.lease_check_interval = lease_check_interval
        self._last_lease_check = 0.0
        # Per user, the last seq applied to the store ahead of publishing.
        self._applied_ahead: dict[str, int] = {}

    _STOP_GRACE = 5.0  # seconds an in-flight round may take to finish on exit

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            # Let an in-flight round finish: cancelling it mid-connect would leave the
            # driver's worker thread completing after the event loop is gone.
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self._STOP_GRACE)
            except (TimeoutError, Exception):
                pass
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(False)
        self._waiters.clear()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def leading(self) -> bool:
        """Whether this process relays: no lease is needed, or it holds the lease."""
        return self._lease is None or self._lease.held

    def notify(self) -> None:
        """Ask for a round now (a local write has committed)."""
        self._wake.set()

    async def wait_published(self, entry_ids: Iterable[int], *, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until these entries have been relayed.

        Returns ``True`` when all were published, ``False`` on timeout or when
        an attempt failed (the entry stays pending and is retried). Writers use
        this for read-your-writes through the store; it never raises.

        When another process holds the lease, this polls the entries'
        ``published_at`` instead, every 10 ms growing to 100 ms.
        """
        if not self.leading:
            return await self._poll_published(list(entry_ids), timeout=timeout)
        loop = asyncio.get_running_loop()
        futures = []
        for entry_id in entry_ids:
            future: asyncio.Future[bool] = loop.create_future()
            self._waiters[entry_id].append(future)
            futures.append(future)
        self.notify()
        try:
            results = await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except TimeoutError:
            return False
        finally:
            for entry_id, future in zip(entry_ids, futures, strict=False):
                waiting = self._waiters.get(entry_id)
                if waiting and future in waiting:
                    waiting.remove(future)
                    if not waiting:
                        del self._waiters[entry_id]
        return all(results)

    async def _poll_published(self, entry_ids: list[int], *, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = 0.01
        while True:
            try:
                async with self._sessions() as session:
                    waiting = await outbox.unpublished(session, entry_ids=entry_ids)
            except Exception as exc:
                logger.warning("could not check whether entries were published: %r", exc)
                return False
            if not waiting:
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.sleep(min(interval, left))
            interval = min(interval * 2, 0.1)

    async def _lead(self) -> bool:
        """Whether to relay this round: take the lease if free, check it now and then."""
        if self._lease is None:
            return True
        loop = asyncio.get_running_loop()
        if self._lease.held:
            if loop.time() - self._last_lease_check >= self.lease_check_interval:
                self._last_lease_check = loop.time()
                await self._lease.check()
            return self._lease.held
        try:
            acquired = await self._lease.try_acquire(on_notify=self.notify)
        except Exception as exc:
            logger.warning("could not try the relay lease: %r", exc)
            return False
        self._last_lease_check = loop.time()
        if acquired and self._store is not None and not self._store.shared:
            # Another holder may have relayed changes this process never saw.
            await self._store.forget()
        return acquired

    async def _run(self) -> None:
        delay = self.retry_base
        while not self._stopping:
            self._wake.clear()
            if not await self._lead():
                # Another process relays (or the database is away): try again a
                # poll interval later. Local writes do not wake this loop early;
                # the holder hears of them through the database.
                await asyncio.sleep(self.poll_interval)
                continue
            try:
                done = await self.run_once()
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

    async def _idle(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        except TimeoutError:
            pass

    async def run_once(self) -> int:
        """One round: relay what is due. Returns the number of entries claimed."""
        now = utcnow()
        async with self._sessions() as session:
            entries = await outbox.pending(session, now=now, limit=self.batch_size)
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
            expected = user_entries[0].seq
            for i, entry in enumerate(user_entries):
                if entry.seq != expected:
                    # A gap: the entry in between was committed but was not due when
                    # claimed (its next_attempt_at was stamped before it took the
                    # sequence lock). Never publish past it; the next round will.
                    break
                expected += 1
                if not self.leading:
                    # The lease was lost mid-round: the next holder takes it from here.
                    break
                try:
                    await self._relay(ChangeEvent.from_entry(entry))
                except Exception as exc:
                    logger.warning(
                        "relay of outbox entry %s (user %r, seq %s) failed: %r",
                        entry.id,
                        entry.user_id,
                        entry.seq,
                        exc,
                    )
                    failed.append((entry, exc))
                    await self._apply_ahead(user_id, user_entries[i + 1 :])
                    break
                published.append(entry)
            else:
                self._applied_ahead.pop(user_id, None)
        await self._record(published, failed)
        for entry, _ in failed:
            await self._apply_held_back(entry)
        # Entries held back behind a failed one will not go out this round:
        # writers waiting on them should not wait for their timeout.
        done = {entry.id for entry in published}
        self._resolve([entry.id for entry in entries if entry.id not in done], False)
        return len(entries)

    async def _apply_held_back(self, failed: OutboxEntry) -> None:
        """Apply every entry held back behind ``failed``, claimed this round or not.

        Entries committed while the round ran were held back by the failure
        without being claimed; their writers are waiting for them. Once they
        are in the store those writers need not wait any longer: their
        change is readable, and it will be published when its turn comes.
        """
        if self._store is None or not self.leading:
            return
        try:
            async with self._sessions() as session:
                entries = await outbox.after(
                    session, user_id=failed.user_id, seq=failed.seq, limit=self.batch_size
                )
        except Exception as exc:
            logger.warning("could not read the entries held back behind %s: %r", failed.id, exc)
            return
        applied = await self._apply_ahead(failed.user_id, entries)
        self._resolve([entry.id for entry in entries if entry.seq <= applied], False)

    async def _apply_ahead(self, user_id: str, entries: Sequence[OutboxEntry]) -> int:
        """Apply entries whose publishing is held back, so that reads stay current.

        While the broker is away, the store would otherwise stop at the
        failed entry and queries would miss every later write. Entries held
        back by a retry time are not claimed, so these may follow a gap: the
        store then primes the user from the database. Each entry is applied
        ahead once; it is applied again (a no-op) when it is published. A
        store that fails here is left alone: the entry's own attempt retries.

        Returns:
            The highest seq of the user now applied ahead (0: none).
        """
        done = self._applied_ahead.get(user_id, 0)
        if self._store is None or not self.leading:
            return done
        for entry in entries:
            if entry.seq <= done:
                continue
            try:
                await self._apply(ChangeEvent.from_entry(entry))
            except Exception as exc:
                logger.debug("store update ahead of publishing failed: %r", exc)
                break
            self._applied_ahead[user_id] = done = entry.seq
        return done

    async def _apply(self, event: ChangeEvent) -> None:
        assert self._store is not None
        state = await self._store.apply(event)
        if not state.primed:
            await prime_user(sessions=self._sessions, store=self._store, user_id=event.user_id)

    async def _relay(self, event: ChangeEvent) -> None:
        if self._store is not None:
            await self._apply(event)
        await self._channels.publish(event)

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
        self._resolve(published_ids, True)
        self._resolve([entry.id for entry, _ in failed], False)

    def _resolve(self, entry_ids: Iterable[int], ok: bool) -> None:
        for entry_id in entry_ids:
            for future in self._waiters.pop(entry_id, ()):
                if not future.done():
                    future.set_result(ok)

    async def _maybe_prune(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_prune < 60:
            return
        self._last_prune = loop.time()
        async with self._sessions.begin() as session:
            pruned = await outbox.prune(
                session, published_before=utcnow() - timedelta(seconds=self.retention)
            )
        if pruned:
            logger.info("pruned %d published outbox entries", pruned)

    async def backlog(self) -> tuple[int, float]:
        """Pending entries and the oldest one's age in seconds."""
        async with self._sessions() as session:
            return await outbox.backlog(session, now=utcnow())
