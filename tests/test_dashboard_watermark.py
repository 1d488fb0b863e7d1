"""The watermark checker: under concurrent writes, every dashboard view is the database at its seq.

Writers add activities (some too big for the PostgreSQL broker, so they
travel by reference), patch statuses, check in and let missed check-ins
escalate, for a few users at once. Dashboard subscribers over both
subprotocols follow them, and keep leaving and coming back: most resume with
``after`` (the last ``seq`` they applied), some start over with a snapshot.
Each subscriber applies every message (a reset replaces its view, a delta
must be at ``seq`` + 1 and is applied to it) and records its view after each.

At the end the database's history (the outbox, every change in ``seq``
order) gives the state at every seq; each recorded view must equal the state
at its seq, and each subscriber's last view must equal the tables' current
rows, read independently of the outbox.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from db import Activity, OutboxEntry, OutboxKind, SessionFactory, UserStatus, utcnow
from db.models import UserSequence
from gql import Settings

from .conftest import GraphQLClient, websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol

USERS = ("w1", "w2", "w3")
WINDOW = 4  # activities per view: small, so activities fall out of it
WRITE_SECONDS = 4.0
SUBSCRIBERS_PER_USER = 3

DASHBOARD = """subscription($u: String!, $after: Int, $n: Int) {
  dashboard(userId: $u, after: $after, activities: $n) {
    seq reset
    status { userId alertLevel version seq nextDue lastCheckIn alertTriggeredAt }
    activities { id seq type userId }
  }
}"""
ADD = "mutation($input: AddActivityInput!) { addActivity(input: $input) { seq } }"
UPDATE = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { seq } }"
CHECK_IN = "mutation($input: RecordCheckInInput!) { recordCheckIn(input: $input) { __typename } }"

Status = tuple[str, int, int, datetime | None, datetime | None, datetime | None]
ActivityKey = tuple[int, int, str]


@dataclass(frozen=True)
class View:
    """What a dashboard client shows: the status and the newest activities."""

    seq: int
    status: Status | None
    activities: tuple[ActivityKey, ...]


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _status(data: dict[str, Any] | None) -> Status | None:
    """The fields a view compares, from a GraphQL status or a stored payload."""
    if data is None:
        return None
    get = data.get
    return (
        str(get("alertLevel", get("alert_level"))),
        int(data["version"]),
        int(data["seq"]),
        _time(get("nextDue", get("next_due"))),
        _time(get("lastCheckIn", get("last_check_in"))),
        _time(get("alertTriggeredAt", get("alert_triggered_at"))),
    )


def _activity(data: dict[str, Any]) -> ActivityKey:
    return (int(data["id"]), int(data["seq"]), str(data["type"]))


@dataclass
class Follower:
    """One dashboard client that keeps reconnecting; records its view after every message."""

    user: str
    protocol: str
    resume: bool
    views: list[View] = field(default_factory=list)
    sessions: int = 0
    fresh: int = 0  # sessions opened without `after`
    resets: int = 0

    @property
    def last(self) -> View | None:
        return self.views[-1] if self.views else None

    def apply(self, update: dict[str, Any]) -> None:
        seq = update["seq"]
        if update["reset"]:
            self.resets += 1
            status = _status(update["status"])
            activities = tuple(_activity(a) for a in update["activities"])
        else:
            last = self.last
            assert last is not None, "a delta before any snapshot"
            assert seq == last.seq + 1, f"{self.user}: delta {seq} after {last.seq}"
            status = last.status if update["status"] is None else _status(update["status"])
            added = tuple(_activity(a) for a in update["activities"])
            assert (update["status"] is None) != (not added), update
            activities = (added + last.activities)[:WINDOW]
        assert all(a[1] <= seq for a in activities), update
        if status is not None:
            assert status[2] <= seq, update
        self.views.append(View(seq, status, activities))

    async def run(
        self, app: FastAPI, stop: asyncio.Event, quiet: asyncio.Event, rng: random.Random
    ) -> None:
        """Connect, read a few messages, leave; again until ``stop``; once ``quiet``, catch up."""
        while True:
            if stop.is_set():
                await quiet.wait()
            catching_up = quiet.is_set()
            after = self.last.seq if self.resume and self.last is not None else None
            async with websocket(app, self.protocol) as ws:
                proto = Protocol(ws, self.protocol)
                await proto.init()
                await proto.subscribe("d", DASHBOARD, {"u": self.user, "after": after, "n": WINDOW})
                self.sessions += 1
                self.fresh += after is None
                budget = rng.randint(2, 12)
                while catching_up or budget > 0:
                    try:
                        message = await proto.next_data("d")
                    except TimeoutError:
                        if catching_up:
                            return  # nothing more to come
                        break
                    self.apply(message["dashboard"])
                    budget -= 1
                    if not catching_up and stop.is_set():
                        break
                    if catching_up and await self._caught_up(app):
                        return
            await asyncio.sleep(rng.uniform(0, 0.05))

    async def _caught_up(self, app: FastAPI) -> bool:
        sessions: SessionFactory = app.state.services.sessions
        async with sessions() as session:
            last = await session.scalar(
                select(UserSequence.last_seq).where(UserSequence.user_id == self.user)
            )
        return self.last is not None and self.last.seq == int(last or 0)


async def _writer(graphql: GraphQLClient, user: str, stop: asyncio.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        choice = rng.random()
        if choice < 0.05:
            # Over the PostgreSQL broker's 8000 bytes: published as a reference, loaded.
            big = {"userId": user, "type": "photo", "metadata": {"blob": "x" * 9000}}
            await graphql.data(ADD, {"input": big})
        elif choice < 0.4:
            await graphql.data(
                ADD, {"input": {"userId": user, "type": rng.choice(["note", "walk"])}}
            )
        elif choice < 0.6:
            level = rng.choice(["NONE", "WARNING", "ALERT"])
            await graphql.data(UPDATE, {"input": {"userId": user, "alertLevel": level}})
        elif choice < 0.75:
            # A due time already past: the escalator raises the level at once.
            due = (utcnow() - timedelta(seconds=rng.randint(0, 3))).isoformat()
            await graphql.data(
                UPDATE, {"input": {"userId": user, "nextDue": due, "alertLevel": "NONE"}}
            )
        else:
            # Due in a second: escalates to WARNING, then ALERT a second later.
            await graphql.data(CHECK_IN, {"input": {"userId": user, "intervalSeconds": 1}})
        await asyncio.sleep(rng.uniform(0, 0.03))


async def _history(sessions: SessionFactory, user: str) -> dict[int, View]:
    """The state at every seq of ``user``, replayed from the outbox."""
    async with sessions() as session:
        entries = (
            await session.scalars(
                select(OutboxEntry).where(OutboxEntry.user_id == user).order_by(OutboxEntry.seq)
            )
        ).all()
    states = {0: View(0, None, ())}
    status: Status | None = None
    activities: tuple[ActivityKey, ...] = ()
    for expected_seq, entry in enumerate(entries, start=1):
        assert entry.seq == expected_seq, "the outbox of the run must be complete"
        if entry.kind == OutboxKind.STATUS:
            status = _status(entry.payload)
        else:
            activities = ((entry.payload["id"], entry.seq, entry.payload["type"]), *activities)
        states[entry.seq] = View(entry.seq, status, activities[:WINDOW])
    return states


async def _tables(sessions: SessionFactory, user: str) -> View:
    """The state now, from the tables themselves."""
    async with sessions() as session:
        last = await session.scalar(
            select(UserSequence.last_seq).where(UserSequence.user_id == user)
        )
        row = await session.get(UserStatus, user)
        rows = (
            await session.scalars(
                select(Activity)
                .where(Activity.user_id == user)
                .order_by(Activity.seq.desc())
                .limit(WINDOW)
            )
        ).all()
    status = None
    if row is not None:
        status = (
            row.alert_level.value,
            row.version,
            row.seq,
            row.next_due,
            row.last_check_in,
            row.alert_triggered_at,
        )
    return View(int(last or 0), status, tuple((a.id, a.seq, a.type) for a in rows))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return Settings(**{**settings.model_dump(), "escalation_policy": "WARNING:0,ALERT:1"})


async def test_every_dashboard_view_is_the_database_at_its_seq(
    app: FastAPI, graphql: GraphQLClient
) -> None:
    rng = random.Random(13)
    followers = [
        Follower(
            user,
            protocol=(TRANSPORT_WS, LEGACY_WS)[i % 2],
            # Most resume with `after`; one per user starts over with a snapshot.
            resume=i > 0,
        )
        for user in USERS
        for i in range(SUBSCRIBERS_PER_USER)
    ]
    stop = asyncio.Event()
    quiet = asyncio.Event()
    readers = [
        asyncio.create_task(f.run(app, stop, quiet, random.Random(rng.random()))) for f in followers
    ]
    writers = [
        asyncio.create_task(_writer(graphql, user, stop, seed)) for seed, user in enumerate(USERS)
    ]
    started = time.monotonic()
    await asyncio.sleep(WRITE_SECONDS)
    stop.set()
    await asyncio.gather(*writers)
    # Let the escalations still due land, then stop them: turn every status's
    # nextDue off so the final state stays put while followers catch up.
    await asyncio.sleep(1.2)
    for user in USERS:
        await graphql.data(UPDATE, {"input": {"userId": user, "nextDue": None}})
    quiet.set()
    await asyncio.wait_for(asyncio.gather(*readers), timeout=60)
    elapsed = time.monotonic() - started

    sessions: SessionFactory = app.state.services.sessions
    async with sessions() as session:
        escalated = await session.scalar(
            select(func.count()).where(Activity.type.in_(["missed_check_in", "alert_triggered"]))
        )
    assert escalated, "no escalation ran during the test"
    for user in USERS:
        states = await _history(sessions, user)
        now = await _tables(sessions, user)
        assert states[now.seq] == now, f"{user}: outbox history and tables disagree"
        for follower in (f for f in followers if f.user == user):
            assert follower.sessions >= 2, "every follower must have reconnected"
            for view in follower.views:
                assert view == states[view.seq], f"{user}: torn view at seq {view.seq}"
            assert follower.last == now, f"{user}: last view is not the database at its seq"
            # Nobody fell behind, so the only snapshots are those of fresh starts:
            # every other message was the delta at seq + 1.
            assert follower.resets == follower.fresh, follower
    total = sum(len(f.views) for f in followers)
    assert total > 50, f"too few messages to prove anything ({total} in {elapsed:.1f}s)"
