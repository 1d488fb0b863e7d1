"""A real server cuts a stalled subscriber off with its SUBSCRIBER_OVERFLOW error, cleanly.

One socket holds several subscriptions and stops reading while events flow,
so its sends block and every inbox overflows. Once the client reads again it
gets, for each operation, the events sent so far, then the error with
``extensions.after`` = the last ``seq`` it received, then ``complete``; the
server logs no ASGI error and no traceback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gql.codes import ErrorCode
from tests.helpers.stalled import StalledSocket
from tests.servers import start_server

SUBSCRIPTIONS = 10
QUEUE = 5
# Enough that the socket's kernel buffers (a few MiB on loopback) fill: 150
# events x 10 subscriptions x 15 KB.
EVENTS = 150
ADD = """mutation($m: JSON!) {
  addActivity(input: {userId: "u1", type: "note", metadata: $m}) { seq }
}"""
LIVE = 'subscription { activityAdded(userId: "u1") { seq metadata } }'


async def test_stalled_subscriber_gets_its_overflow_error(tmp_path: Path) -> None:
    server = start_server(tmp_path, settings={"WRITE_WAIT": "0", "SUBSCRIBER_QUEUE": str(QUEUE)})
    try:
        sock = StalledSocket(server.graphql_url, receive_buffer=None)
        for index in range(SUBSCRIPTIONS):
            sock.subscribe(str(index), LIVE)
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(EVENTS):
                response = await http.post(
                    server.graphql_url,
                    json={"query": ADD, "variables": {"m": {"blob": "x" * 15_000}}},
                )
                assert "errors" not in response.json(), response.text
        messages = await asyncio.to_thread(sock.messages, 5.0)
        sock.close()
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "Unexpected ASGI message" not in log and "Traceback" not in log, log[-3000:]

    by_op: dict[str, list[dict[str, object]]] = {}
    for message in messages:
        if "id" in message:
            by_op.setdefault(str(message["id"]), []).append(message)
    assert sorted(by_op, key=int) == [str(i) for i in range(SUBSCRIPTIONS)]
    for op_id, received in by_op.items():
        *events, error, complete = received
        seqs = [m["payload"]["data"]["activityAdded"]["seq"] for m in events]  # type: ignore[index]
        assert seqs == list(range(1, len(seqs) + 1)), (op_id, seqs)
        assert len(seqs) < EVENTS, "the subscriber was never cut off"
        assert error["type"] == "next", error
        [detail] = error["payload"]["errors"]  # type: ignore[index]
        assert detail["extensions"] == {"code": ErrorCode.SUBSCRIBER_OVERFLOW, "after": seqs[-1]}
        assert complete == {"id": op_id, "type": "complete"}
