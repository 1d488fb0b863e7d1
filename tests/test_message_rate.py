"""WS_MESSAGES_PER_SECOND / WS_MESSAGE_BURST: a socket that floods messages is closed 1008."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from gql import Settings
from gql.frames import MessageRate

from .conftest import websocket
from .helpers import LEGACY_WS, TRANSPORT_WS, Protocol, closed_with

BURST = 5


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_burst_is_spent_then_refilled_at_the_rate() -> None:
    clock = Clock()
    rate = MessageRate(2.0, 3, clock=clock)
    assert [rate.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one message's worth at 2 per second
    assert [rate.take() for _ in range(2)] == [True, False]
    clock.now += 60  # a long quiet spell refills to the burst, not beyond
    assert [rate.take() for _ in range(4)] == [True, True, True, False]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ws_messages_per_second": 0.01, "ws_message_burst": BURST})


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _end(protocol_name: str) -> dict[str, str]:
    # Ending an id that never ran is ignored by both protocols: only the rate can close.
    return {"type": "complete" if protocol_name == TRANSPORT_WS else "stop", "id": "none"}


async def test_a_socket_within_its_burst_stays_open(app: FastAPI, protocol_name: str) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()  # one message
        for _ in range(BURST - 2):
            await ws.send_json(_end(protocol_name))
        # A document that does not parse gets an error for its id on an open socket.
        await proto.subscribe("a", "subscription {", {})
        message = await ws.receive_json(timeout=5)
        assert message["type"] == "error", message
        assert message["id"] == "a"


async def test_a_flood_closes_the_socket_with_1008(app: FastAPI, protocol_name: str) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        # init took one message of the burst: the burst's last, then one more.
        for _ in range(BURST):
            await ws.send_json(_end(protocol_name))
        assert await closed_with(proto, timeout=5) == 1008
