"""The WebSocket transport settings reach uvicorn: the implementation and per-message deflate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from gql.cli import websocket_options
from gql.settings import Settings

from .servers import start_server

DEFLATE = "permessage-deflate"


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app that is never called: uvicorn.Config only needs one to load."""


@pytest.mark.parametrize(
    ("name", "protocol"),
    [
        ("websockets-sansio", WebSocketsSansIOProtocol),
        ("wsproto", WSProtocol),
    ],
)
def test_the_implementation_setting_chooses_uvicorn_s_protocol_class(
    name: str, protocol: type
) -> None:
    settings = Settings(ws_implementation=name)  # type: ignore[arg-type]
    config = uvicorn.Config(_app, **websocket_options(settings))
    config.load()

    assert config.ws_protocol_class is protocol


@pytest.mark.parametrize("deflate", [False, True])
def test_the_deflate_setting_and_the_frame_limit_reach_uvicorn(deflate: bool) -> None:
    settings = Settings(ws_per_message_deflate=deflate, max_ws_frame_bytes=4096)
    config = uvicorn.Config(_app, **websocket_options(settings))

    assert config.ws_per_message_deflate is deflate
    assert config.ws_max_size == 4096


def test_an_unknown_implementation_is_refused() -> None:
    with pytest.raises(ValueError, match="ws_implementation"):
        Settings(ws_implementation="websockets")  # type: ignore[arg-type]


async def _handshake_extensions(ws_url: str) -> str | None:
    """Open a socket offering deflate, as browsers do; the extensions the server agreed to."""
    async with connect(
        ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], compression="deflate"
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        assert ws.response is not None
        return ws.response.headers.get("Sec-WebSocket-Extensions")


@pytest.mark.parametrize(
    ("settings", "negotiated"),
    [
        ({}, False),
        ({"WS_PER_MESSAGE_DEFLATE": "true"}, True),
        ({"WS_IMPLEMENTATION": "wsproto"}, False),
        ({"WS_IMPLEMENTATION": "wsproto", "WS_PER_MESSAGE_DEFLATE": "true"}, True),
    ],
)
async def test_a_served_socket_negotiates_deflate_only_when_the_setting_is_on(
    tmp_path: Path, settings: dict[str, str], negotiated: bool
) -> None:
    server = start_server(tmp_path, settings=settings)
    try:
        extensions = await _handshake_extensions(server.ws_url)
    finally:
        server.stop()

    if negotiated:
        assert extensions is not None
        assert extensions.startswith(DEFLATE)
    else:
        assert extensions is None
