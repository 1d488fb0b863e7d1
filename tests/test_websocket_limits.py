"""WebSocket abuse limits (gql/frames.py, gql/websockets.py) on both subprotocols."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from fastapi import FastAPI
from httpx_ws import WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from db.migrate import upgrade
from gql import Settings, create_app

from .conftest import websocket
from .helpers import ACTIVITY_ADDED, LEGACY_WS, TRANSPORT_WS, Protocol, closed_with


@pytest.fixture(params=[TRANSPORT_WS, LEGACY_WS])
def protocol_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return Settings(
        **{
            **settings.model_dump(),
            "connection_init_timeout": 0.5,
            "allowed_origins": ["https://dashboard.example"],
        }
    )


async def test_missing_connection_init_closes_4408_within_the_limit(
    app: FastAPI, protocol_name: str
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with websocket(app, protocol_name) as ws:
        assert await closed_with(Protocol(ws, protocol_name), timeout=3) == 4408
    assert 0.4 < loop.time() - started < 1.5


async def test_connection_init_in_time_is_not_closed(app: FastAPI, protocol_name: str) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        await asyncio.sleep(0.8)
        await proto.subscribe("a", ACTIVITY_ADDED, {"u": "u1"})
        await proto.stop("a")
        if protocol_name == TRANSPORT_WS:
            await ws.send_json({"type": "ping"})
            assert (await ws.receive_json(timeout=2))["type"] == "pong"


async def test_cross_origin_handshake_is_refused(app: FastAPI) -> None:
    # Closing before accepting is how ASGI refuses a handshake; servers answer it with 403.
    with pytest.raises(BaseException) as refused:  # noqa: PT011 - an ExceptionGroup
        async with websocket(app, TRANSPORT_WS, headers={"Origin": "https://evil.example"}):
            pass
    assert _disconnect_code(refused.value) == 1008
    for origin in ("https://dashboard.example", "http://test"):
        async with websocket(app, TRANSPORT_WS, headers={"Origin": origin}) as ws:
            await Protocol(ws, TRANSPORT_WS).init()


def _disconnect_code(error: BaseException) -> int | None:
    if isinstance(error, WebSocketDisconnect):
        return error.code
    for inner in getattr(error, "exceptions", ()):
        if (code := _disconnect_code(inner)) is not None:
            return code
    return None


async def test_at_most_50_operations_per_socket(app: FastAPI, protocol_name: str) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        for i in range(50):
            await proto.subscribe(f"s{i}", ACTIVITY_ADDED, {"u": f"u{i}"})
        await proto.subscribe("one-too-many", ACTIVITY_ADDED, {"u": "u1"})
        message = await proto.receive()
        assert message["type"] == "error", message
        assert message["id"] == "one-too-many"
        assert "limit" in json.dumps(message["payload"])
        # Ending one makes room for another.
        await proto.stop("s0")
        await asyncio.sleep(0.05)
        await proto.subscribe("room", ACTIVITY_ADDED, {"u": "u1"})
        await asyncio.sleep(0.1)
        await proto.stop("room")
        rest = []
        with contextlib.suppress(TimeoutError):
            while True:
                rest.append(await proto.receive(timeout=0.3))
        assert all(m["type"] == "complete" for m in rest), rest


MALFORMED: list[tuple[str, str]] = [
    ("array", "[]"),
    ("number", "42"),
    ("string", '"connection_init"'),
    ("null", "null"),
    ("not-json", "{not json"),
    ("type-not-string", '{"type": 7}'),
    ("no-type", '{"payload": {}}'),
    ("payload-not-object", '{"type": "connection_init", "payload": [1]}'),
    ("id-not-string", '{"id": 5, "type": "subscribe", "payload": {"query": "{__typename}"}}'),
    ("id-array", '{"id": [], "type": "complete"}'),
    ("subscribe-no-id", '{"type": "subscribe", "payload": {"query": "{__typename}"}}'),
    ("subscribe-no-payload", '{"id": "1", "type": "subscribe"}'),
    ("query-not-string", '{"id": "1", "type": "subscribe", "payload": {"query": 1}}'),
    (
        "variables-not-object",
        '{"id": "1", "type": "subscribe", "payload": {"query": "{a}", "variables": []}}',
    ),
    ("stop-no-id", '{"type": "complete"}'),
    (
        "operation-name-lone-surrogate",
        '{"id": "1", "type": "subscribe", '
        '"payload": {"query": "{__typename}", "operationName": "\\ud800"}}',
    ),
    ("id-lone-surrogate", '{"id": "\\ud800", "type": "complete"}'),
    # Not JSON, though Python reads them: a pong would echo them back.
    ("ping-nan", '{"type": "ping", "payload": {"a": NaN}}'),
    ("ping-infinity", '{"type": "ping", "payload": {"a": Infinity}}'),
    (
        "variables-minus-infinity",
        '{"id": "1", "type": "subscribe", '
        '"payload": {"query": "{__typename}", "variables": {"n": -Infinity}}}',
    ),
]


@pytest.mark.parametrize(("name", "frame"), MALFORMED, ids=[name for name, _ in MALFORMED])
@pytest.mark.parametrize("after_init", [False, True], ids=["before-init", "after-init"])
async def test_malformed_frame_closes_4400(
    app: FastAPI, protocol_name: str, name: str, frame: str, after_init: bool
) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        if after_init:
            await proto.init()
        if name in ("subscribe-no-id", "subscribe-no-payload") and protocol_name == LEGACY_WS:
            frame = frame.replace('"subscribe"', '"start"')
        if name == "stop-no-id" and protocol_name == LEGACY_WS:
            frame = frame.replace('"complete"', '"stop"')
        await ws.send_text(frame)
        assert await closed_with(proto) == 4400


async def test_binary_frame_closes_4400(app: FastAPI, protocol_name: str) -> None:
    async with websocket(app, protocol_name) as ws:
        await ws.send_bytes(b'{"type": "connection_init"}')
        assert await closed_with(Protocol(ws, protocol_name)) == 4400


async def test_oversize_frame_closes_1009(app: FastAPI, protocol_name: str) -> None:
    async with websocket(app, protocol_name) as ws:
        proto = Protocol(ws, protocol_name)
        await proto.init()
        query = "{ __typename }" + " " * (64 * 1024)
        await proto.subscribe("big", query, {})
        with pytest.raises(WebSocketDisconnect) as closed:  # noqa: PT012
            while True:
                await proto.receive()
        assert closed.value.code == 1009
        assert "65536" in closed.value.reason


async def test_a_frame_at_the_limit_is_fine(app: FastAPI) -> None:
    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        frame = json.dumps(
            {"id": "ok", "type": "subscribe", "payload": {"query": "{ __typename }"}}
        )
        frame = frame[:-2] + " " * (64 * 1024 - len(frame)) + frame[-2:]
        assert len(frame) == 64 * 1024
        await ws.send_text(frame)
        message = await proto.receive()
        assert message["type"] == "next", message


# The same limits through a real server: uvicorn answers a refused handshake with 403.


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    await asyncio.to_thread(upgrade, settings.database_url)
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_level="warning",
        ws_max_size=settings.max_ws_frame_bytes,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_on_uvicorn_cross_origin_gets_403_and_big_frames_1009(settings: Settings) -> None:
    async with serving(settings) as url:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin="https://evil.example", subprotocols=[TRANSPORT_WS]):
                pass
        assert refused.value.response.status_code == 403
        async with connect(
            url,
            origin="https://dashboard.example",
            subprotocols=[TRANSPORT_WS],
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send("x" * (64 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
