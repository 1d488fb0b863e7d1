"""A test client for both WebSocket subprotocols, and waits on what it causes server-side."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class Protocol:
    """Speaks one subprotocol: graphql-transport-ws (PROTOCOL.md of graphql-ws) or the
    legacy graphql-ws (subscriptions-transport-ws)."""

    def __init__(self, ws: AsyncWebSocketSession, name: str) -> None:
        self.ws = ws
        self.name = name

    async def init(self, payload: dict[str, Any] | None = None) -> None:
        await self.ws.send_json({"type": "connection_init", "payload": payload or {}})
        ack = await self.receive()
        assert ack["type"] == "connection_ack", ack

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any]) -> None:
        kind = "subscribe" if self.name == TRANSPORT_WS else "start"
        await self.ws.send_json(
            {"id": op_id, "type": kind, "payload": {"query": query, "variables": variables}}
        )

    async def stop(self, op_id: str) -> None:
        kind = "complete" if self.name == TRANSPORT_WS else "stop"
        await self.ws.send_json({"id": op_id, "type": kind})

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = await asyncio.wait_for(self.ws.receive_json(), timeout)
            if message["type"] not in ("ka", "ping", "pong"):
                return message

    async def next_data(self, op_id: str) -> dict[str, Any]:
        message = await self.receive()
        data_type = "next" if self.name == TRANSPORT_WS else "data"
        assert message["type"] == data_type and message["id"] == op_id, message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data


async def closed_with(proto: Protocol, timeout: float = 5.0) -> int:
    """Read until the server closes the socket; its close code."""
    with pytest.raises(WebSocketDisconnect) as closed:  # noqa: PT012
        while True:
            await proto.receive(timeout)
    return closed.value.code


async def wait_subscribed(app: FastAPI, channels: int) -> None:
    """Wait until the app's broker has ``channels`` channels subscribed."""
    # The server subscribes to the broker asynchronously after "subscribe";
    # wait until it has, so that the next mutation is not published too early.
    hub = app.state.services.hub
    for _ in range(200):
        if hub.channels >= channels:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("subscription never reached the broker")
