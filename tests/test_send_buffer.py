"""MAX_WS_SEND_BUFFER_BYTES: a client that does not read holds a bounded amount of frames.

A socket double whose sends never return (the client's window is shut) stands
for a client that stopped reading. Once the frames waiting on it would pass
the budget, the socket is closed with 1008, the new frame is dropped and the
operations waiting to send are cancelled, so nothing of theirs is held. A
socket within the budget is left alone.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from pydantic import ValidationError
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketState

from gql import Settings
from gql.codes import CloseCode
from gql.frames import LimitedWebSocketAdapter

FRAME = 100_000


class StalledClient:
    """The ASGI side of a socket: ``websocket.send`` waits until released, the close does not."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.sent: list[Message] = []
        self.closed: Message | None = None

    async def receive(self) -> Message:
        await asyncio.Event().wait()  # the client sends nothing
        raise AssertionError  # pragma: no cover

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.close":
            self.closed = message
            return
        await self.released.wait()
        self.sent.append(message)


class View:
    """What the adapter needs of the router: JSON both ways and the budget."""

    def __init__(self, budget: int) -> None:
        self.max_send_buffer_bytes = budget

    def encode_json(self, data: object) -> str:
        return json.dumps(data, separators=(",", ":"))

    def decode_json(self, data: str | bytes) -> object:
        return json.loads(data)


def _adapter(client: StalledClient, budget: int) -> LimitedWebSocketAdapter:
    socket = WebSocket({"type": "websocket", "path": "/"}, client.receive, client.send)
    socket.client_state = socket.application_state = WebSocketState.CONNECTED
    return LimitedWebSocketAdapter(cast(Any, View(budget)), socket, socket)


def _next(op_id: str) -> dict[str, object]:
    return {"id": op_id, "type": "next", "payload": {"data": {"blob": "x" * FRAME}}}


async def test_over_the_budget_the_socket_closes_1008_and_frees_the_frames() -> None:
    client = StalledClient()
    adapter = _adapter(client, budget=5 * FRAME)
    operations = [asyncio.create_task(adapter.send_json(_next(str(i)))) for i in range(10)]
    await asyncio.wait(operations, timeout=2)
    assert all(task.done() for task in operations)
    assert client.closed is not None
    assert client.closed["code"] == CloseCode.POLICY_VIOLATION
    assert "MAX_WS_SEND_BUFFER_BYTES" in client.closed["reason"]
    # Every waiting send was given up: nothing of theirs is held any more.
    assert adapter.unsent_bytes == 0
    assert all(task.cancelled() for task in operations)
    client.released.set()
    await asyncio.sleep(0)
    assert client.sent == []


async def test_within_the_budget_every_frame_waits_and_is_sent() -> None:
    client = StalledClient()
    adapter = _adapter(client, budget=20 * FRAME)
    operations = [asyncio.create_task(adapter.send_json(_next(str(i)))) for i in range(10)]
    await asyncio.sleep(0.1)
    assert client.closed is None
    assert adapter.unsent_bytes > 10 * FRAME
    client.released.set()
    await asyncio.gather(*operations)
    assert len(client.sent) == 10
    assert adapter.unsent_bytes == 0
    assert client.closed is None


def test_the_budget_holds_at_least_one_result() -> None:
    with pytest.raises(ValidationError, match="MAX_WS_SEND_BUFFER_BYTES"):
        Settings(max_response_bytes=4 * 2**20, max_ws_send_buffer_bytes=2**20)
