"""The hub fixes broadcaster 0.3.1's defects; each test fails on a stock `broadcaster.Broadcast`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from broadcaster import Event

from sync import ChannelDisconnected, Hub, Subscriber, SubscriberOverflow, SubscriptionClosed
from sync.backends.memory import MemoryBackend


class SlowSubscribeBackend(MemoryBackend):
    """A memory backend whose subscribe awaits, like every network backend's does."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribe_calls = 0

    async def subscribe(self, channel: str) -> None:
        self.subscribe_calls += 1
        await asyncio.sleep(0.05)
        await super().subscribe(channel)


class FailingBackend(MemoryBackend):
    """next_published fails once on demand, as a dropped broker connection does."""

    def __init__(self) -> None:
        super().__init__()
        self.break_now = asyncio.Event()
        self.connects = 0

    async def connect(self) -> None:
        self.connects += 1
        await super().connect()

    async def next_published(self) -> Event:
        published = asyncio.ensure_future(super().next_published())
        broken = asyncio.ensure_future(self.break_now.wait())
        done, pending = await asyncio.wait({published, broken}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if broken in done:
            self.break_now.clear()
            published.cancel()
            raise ConnectionError("connection reset by peer")
        return published.result()


async def _collect(subscriber: Subscriber, n: int) -> list[str]:
    return [(await subscriber.get()).message for _ in range(n)]


async def test_concurrent_first_subscribers_both_receive_and_exit_cleanly() -> None:
    backend = SlowSubscribeBackend()
    async with Hub(backend=backend) as hub:
        ready = asyncio.Barrier(3)
        received: dict[str, list[str]] = {}

        async def dashboard(name: str) -> None:
            async with hub.subscribe("user.1") as subscriber:
                await ready.wait()
                received[name] = await asyncio.wait_for(_collect(subscriber, 3), 2)

        tasks = [asyncio.create_task(dashboard(n)) for n in ("a", "b")]
        await ready.wait()
        for i in range(3):
            await hub.publish("user.1", f"e{i}")
        await asyncio.gather(*tasks)  # neither raises KeyError on exit
    assert received == {"a": ["e0", "e1", "e2"], "b": ["e0", "e1", "e2"]}
    assert backend.subscribe_calls == 1
    assert hub.channels == 0


async def test_last_unsubscribe_releases_the_backend_channel() -> None:
    backend = SlowSubscribeBackend()
    async with Hub(backend=backend) as hub:
        async with hub.subscribe("c"):
            assert backend.subscribed == {"c"}
        assert backend.subscribed == set()
        # Subscribing again works.
        async with hub.subscribe("c") as subscriber:
            await hub.publish("c", "again")
            assert (await asyncio.wait_for(subscriber.get(), 1)).message == "again"


async def test_slow_subscriber_is_cut_off_without_slowing_others() -> None:
    async with Hub("memory://", max_queue=10) as hub:
        async with hub.subscribe("c") as stalled, hub.subscribe("c") as active:
            got: list[str] = []
            for i in range(50):
                await hub.publish("c", str(i))
                got.append((await asyncio.wait_for(active.get(), 1)).message)
            assert got == [str(i) for i in range(50)]
            assert stalled.queued <= 10
            with pytest.raises(SubscriberOverflow):
                await stalled.get()


async def test_dying_listener_ends_subscribers_and_reconnects() -> None:
    backend = FailingBackend()
    async with Hub(backend=backend) as hub:
        async with hub.subscribe("c") as subscriber:
            backend.break_now.set()
            with pytest.raises(ChannelDisconnected):
                await asyncio.wait_for(subscriber.get(), 2)
        assert await hub.wait_healthy(5)
        assert backend.connects == 2
        async with hub.subscribe("c") as subscriber:
            await hub.publish("c", "after")
            assert (await asyncio.wait_for(subscriber.get(), 2)).message == "after"


async def test_subscribe_while_disconnected_is_refused() -> None:
    backend = FailingBackend()
    hub = Hub(backend=backend)
    with pytest.raises(ChannelDisconnected):
        async with hub.subscribe("c"):
            pass


async def test_cancelled_subscriber_still_releases_the_channel() -> None:
    backend = SlowSubscribeBackend()
    async with Hub(backend=backend) as hub:
        entered = asyncio.Event()

        async def reader() -> Any:
            async with hub.subscribe("c") as subscriber:
                entered.set()
                await subscriber.get()

        task = asyncio.create_task(reader())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert hub.channels == 0
        assert backend.subscribed == set()


class InterruptibleBackend(SlowSubscribeBackend):
    """Records whether a subscribe was interrupted half-way, as a cancelled driver call is."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = 0

    async def subscribe(self, channel: str) -> None:
        try:
            await super().subscribe(channel)
        except asyncio.CancelledError:
            self.interrupted += 1
            raise


async def test_cancel_during_backend_subscribe_never_interrupts_the_driver() -> None:
    backend = InterruptibleBackend()
    async with Hub(backend=backend) as hub:

        async def dashboard() -> None:
            async with hub.subscribe("c"):
                await asyncio.sleep(10)

        task = asyncio.create_task(dashboard())
        await asyncio.sleep(0.01)  # inside the backend's subscribe
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert backend.interrupted == 0
        assert backend.subscribe_calls == 1
        assert backend.subscribed == set()
        assert hub.channels == 0


async def test_disconnecting_ends_subscriptions_normally_after_queued_events() -> None:
    hub = Hub("memory://")
    await hub.connect()
    async with hub.subscribe("c") as iterated, hub.subscribe("c") as polled:
        await hub.publish("c", "last")
        await asyncio.sleep(0.01)
        await hub.disconnect()
        assert [event.message async for event in iterated] == ["last"]
        assert (await polled.get()).message == "last"
        with pytest.raises(SubscriptionClosed):
            await polled.get()
        with pytest.raises(SubscriptionClosed):
            await polled.get()
    assert hub.channels == 0
