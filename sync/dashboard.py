"""The dashboard stream: a snapshot at one watermark, then one delta per change.

A dashboard follows both of a user's channels (activities and status
changes) through one :class:`MergedInbox`, so it shares the hub's channel
subscriptions with every other subscriber of that user. Its messages are
:class:`DashboardUpdate` values:

* a **snapshot** (``reset=True``): the status and newest activities read at
  one watermark ``seq`` (:func:`db.dashboard.snapshot`), replacing the view;
* a **delta** (``reset=False``): the change with sequence number ``seq``,
  which is always the previous message's ``seq`` + 1.

Applying every message up to ``seq = S`` gives the state the database held
at S. Whenever the next change is not the previous ``seq`` + 1 (the client
fell ``SUBSCRIBER_QUEUE`` events behind and its inbox conflated, or an event
could not be loaded), the stream sends a fresh snapshot instead of the gap.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import assert_never

from broadcaster import Event

from db import OutboxKind, SessionFactory
from db.dashboard import DashboardSnapshot, snapshot
from db.payloads import ActivityPayload, StatusPayload

from .events import ChangeEvent
from .streams import EventStream
from .subscribers import Subscriber, SubscriptionClosed

__all__ = ["DashboardStream", "DashboardUpdate", "MergedInbox"]


@dataclass(frozen=True, slots=True)
class DashboardUpdate:
    """One dashboard message; see the module docstring.

    Attributes:
        seq: the watermark this message brings the view up to.
        reset: ``True`` for a snapshot (replace the view), ``False`` for a delta.
        status: snapshot: the status (``None``: none yet); delta: the new status, or ``None``.
        activities: snapshot: the newest activities, newest first; delta: the added one, or none.
    """

    seq: int
    reset: bool
    status: StatusPayload | None
    activities: Sequence[ActivityPayload]

    @classmethod
    def of_snapshot(cls, state: DashboardSnapshot) -> DashboardUpdate:
        return cls(seq=state.seq, reset=True, status=state.status, activities=state.activities)

    @classmethod
    def of_event(cls, event: ChangeEvent) -> DashboardUpdate:
        match event.kind:
            case OutboxKind.ACTIVITY:
                return cls(seq=event.seq, reset=False, status=None, activities=[event.activity])
            case OutboxKind.STATUS:
                return cls(seq=event.seq, reset=False, status=event.status, activities=[])
            case _:
                assert_never(event.kind)


def _seq_of(event: Event) -> int:
    try:
        return int(json.loads(event.message)["s"])
    except (ValueError, KeyError, TypeError):
        return 0  # malformed: let the stream drop it first


class MergedInbox:
    """The events of several hub subscribers of one user, in the order the hub received them.

    The hub's listener pushes each event into its inboxes in the order the
    broker delivered them, and the relay publishes a user's changes in
    ``seq`` order; so when several inboxes hold an event, the lowest ``seq``
    comes first. Iterating ends when every subscriber closed normally and
    raises the first :class:`sync.subscribers.ChannelError` of any.
    """

    def __init__(self, *subscribers: Subscriber) -> None:
        self._subscribers = subscribers

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        count = len(self._subscribers)
        heads: list[Event | None] = [None] * count
        seqs = [0] * count  # of the heads, parsed once each
        gets: list[asyncio.Future[Event] | None] = [None] * count
        open_ = [True] * count
        try:
            while True:
                for i, subscriber in enumerate(self._subscribers):
                    if not open_[i] or heads[i] is not None:
                        continue
                    get = gets[i]
                    try:
                        if get is None and subscriber.queued:
                            # Queued: taken at once, no task needed.
                            heads[i] = await subscriber.get()
                        elif get is not None and (get.done() or subscriber.queued):
                            # A getter whose inbox is not empty is about to take
                            # an event that may precede the heads held: take it.
                            gets[i] = None
                            heads[i] = await get
                    except SubscriptionClosed:
                        open_[i] = False
                        continue
                    head = heads[i]
                    if head is not None and count > 1:
                        seqs[i] = _seq_of(head)
                ready = [i for i, head in enumerate(heads) if head is not None]
                if ready:
                    first = min(ready, key=seqs.__getitem__)
                    event = heads[first]
                    heads[first] = None
                    assert event is not None
                    yield event
                    continue
                waiting: list[asyncio.Future[Event]] = []
                for i, subscriber in enumerate(self._subscribers):
                    if not open_[i]:
                        continue
                    get = gets[i]
                    if get is None:
                        get = gets[i] = asyncio.ensure_future(subscriber.get())
                    waiting.append(get)
                if not waiting:
                    return
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for get in gets:
                if get is None:
                    continue
                if get.done():
                    if not get.cancelled():
                        get.exception()  # retrieved: an ending stream need not report it
                else:
                    get.cancel()


class DashboardStream:
    """A user's dashboard: a snapshot (or a replay after ``after``), then deltas.

    Args:
        events: the user's change events of every kind, replaying after
            ``after`` first when it is set.
        sessions: for snapshots.
        user_id: whose dashboard.
        activities: how many activities a snapshot carries (1-100).
        after: resume after this ``seq`` (it must be replayable); ``None``
            starts with a snapshot.

    Iterating yields :class:`DashboardUpdate` values and raises what
    :class:`sync.streams.EventStream` raises.

    Attributes:
        resets: snapshots sent so far (the first one included).
    """

    def __init__(
        self,
        events: EventStream,
        *,
        sessions: SessionFactory,
        user_id: str,
        activities: int,
        after: int | None,
    ) -> None:
        self._events = events
        self._sessions = sessions
        self._user_id = user_id
        self._activities = activities
        self._after = after
        self._seq = after
        self.resets = 0

    @property
    def last_seq(self) -> int | None:
        """The ``seq`` of the last message yielded (the resume point), or ``None``."""
        return self._seq

    def __aiter__(self) -> AsyncIterator[DashboardUpdate]:
        return self._updates()

    async def _updates(self) -> AsyncIterator[DashboardUpdate]:
        if self._after is None:
            yield await self._snapshot()
        async for event in self._events:
            assert self._seq is not None
            if event.seq <= self._seq:
                continue  # already delivered (the event stream drops these too)
            if event.seq > self._seq + 1:
                # A gap: the inbox conflated (the client fell behind), or an
                # event could not be loaded. The snapshot covers it, and
                # events up to its watermark are dropped from now on.
                yield await self._snapshot()
                continue
            self._seq = event.seq
            yield DashboardUpdate.of_event(event)

    async def _snapshot(self) -> DashboardUpdate:
        # Read after the channels are subscribed: a change committed after the
        # read is published after it, so it arrives live, above the watermark.
        async with self._sessions() as session:
            state = await snapshot(session, user_id=self._user_id, activities=self._activities)
        self._events.skip_through(self._user_id, state.seq)
        self._seq = state.seq
        self.resets += 1
        return DashboardUpdate.of_snapshot(state)
