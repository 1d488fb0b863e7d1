"""Fuzzing: operations generated from schema.graphql, and arbitrary WebSocket frames.

Runs against a production-mode app with authentication on, as four callers
(admin, a user, a service API key, nobody). Passes only with no server error:
no 5xx, no ``INTERNAL_SERVER_ERROR`` (masked or not), every error carrying a
code, and no request hanging past its timeout. ``FUZZ_EXAMPLES`` sets the
number of examples (default 500 operations, 150 raw bodies and 75 frame
sequences per WebSocket subprotocol: about 15 s together; raise it locally
for a longer hunt, e.g. FUZZ_EXAMPLES=5000). The count bounds the run in CI; a
10 s timeout on every request bounds each example.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from fastapi import FastAPI
from httpx_ws import WebSocketDisconnect
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzzing
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema
from wsproto.utilities import LocalProtocolError

from gql import Settings

from .conftest import API_KEY, bearer, secure, token, websocket
from .helpers import LEGACY_WS, TRANSPORT_WS

SCHEMA = (Path(__file__).parents[1] / "schema.graphql").read_text()
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
TIMEOUT = 10.0
CALLERS = {
    "admin": bearer(token("ops", role="admin", expires_in=3600)),
    "user": bearer(token("u1", expires_in=3600)),
    "service": bearer(API_KEY),
    "nobody": {},
}


def _value_node(value: Any) -> graphql.ValueNode:
    if value is None:
        return graphql.NullValueNode()
    if isinstance(value, bool):
        return graphql.BooleanValueNode(value=value)
    if isinstance(value, int):
        return graphql.IntValueNode(value=str(value))
    if isinstance(value, float):
        return graphql.FloatValueNode(value=repr(value))
    if isinstance(value, str):
        return graphql.StringValueNode(value=value)
    if isinstance(value, list):
        return graphql.ListValueNode(values=tuple(_value_node(v) for v in value))
    return graphql.ObjectValueNode(
        fields=tuple(
            graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=_value_node(v))
            for k, v in value.items()
        )
    )


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**31), 2**31 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_datetimes = st.one_of(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # no offset: refused
    st.text(max_size=30),
)
CUSTOM_SCALARS = {
    "DateTime": _datetimes.map(_value_node),
    "JSON": _json.map(_value_node),
}
_operations = st.one_of(
    from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, mode=Mode.POSITIVE),
    from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, mode=Mode.NEGATIVE),
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return secure(settings, env="production", write_wait=0)


def _check_body(status: int, body: Any, document: str) -> None:
    assert status < 500, (status, body, document)
    assert isinstance(body, dict), body
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code, (error, document)
        assert code != "INTERNAL_SERVER_ERROR", (error, document)


@fuzzing(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=_operations, caller=st.sampled_from(sorted(CALLERS)), via_get=st.booleans())
async def test_generated_operations_never_cause_a_server_error(
    client: httpx.AsyncClient, document: str, caller: str, via_get: bool
) -> None:
    headers = CALLERS[caller]
    if via_get:
        request = client.get("/graphql", params={"query": document}, headers=headers)
    else:
        request = client.post("/graphql", json={"query": document}, headers=headers)
    response = await asyncio.wait_for(request, TIMEOUT)
    if via_get and response.status_code == 405:
        assert document.lstrip().startswith("mutation"), document
        return
    assert response.headers["content-type"].startswith("application/json"), response.text
    _check_body(response.status_code, response.json(), document)


_bodies = st.one_of(
    _json.map(json.dumps),
    st.fixed_dictionaries(
        {"query": st.one_of(_operations, st.text(max_size=40), _json)},
        optional={"variables": _json, "operationName": _json, "extensions": _json},
    ).map(json.dumps),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


@fuzzing(
    max_examples=max(EXAMPLES * 3 // 10, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_bodies, caller=st.sampled_from(sorted(CALLERS)))
async def test_arbitrary_http_bodies_never_cause_a_server_error(
    client: httpx.AsyncClient, body: str, caller: str
) -> None:
    headers = {**CALLERS[caller], "content-type": "application/json"}
    request = client.post(
        "/graphql", content=body.encode("utf-8", "surrogatepass"), headers=headers
    )
    response = await asyncio.wait_for(request, TIMEOUT)
    assert response.status_code < 500, (response.status_code, response.text, body)
    if response.headers["content-type"].startswith("application/json"):
        _check_body(response.status_code, response.json(), body)


# The cost bypass of issue 12 (finding 4): any JSON spelling of a number that GraphQL
# coerces to Int must be counted as that Int, and so must a variable's default.
_SPELLINGS = ("{}", "{}.0", "{}.000", "{}e0", "{}0e-1", "{}E+0")
_METADATA_PAGE = 'recentActivities(userId: "u1", first: $n) { edges { node { metadata } } }'
_INT_MAX = 2**31 - 1


@st.composite
def _first_values(draw: st.DrawFn) -> tuple[str, str, int | None]:
    """(document, variables JSON, the Int GraphQL coerces ``$n`` to or None if it cannot)."""
    pages = draw(st.integers(1, 15))
    number = draw(
        st.one_of(st.integers(-3, 300), st.integers(-(2**40), 2**40), st.just(_INT_MAX + 1))
    )
    fraction = draw(st.sampled_from(["", "", ".5"]))
    text = draw(st.sampled_from(_SPELLINGS)).format(number) if not fraction else f"{number}.5"
    as_default = draw(st.booleans())
    declaration = f"$n: Int = {number}" if as_default else "$n: Int"
    fields = " ".join(f"p{i}: {_METADATA_PAGE}" for i in range(pages))
    document = f"query({declaration}) {{ {fields} }}"
    variables = "{}" if as_default else f'{{"n": {text}}}'
    coercible = as_default or not fraction
    coerced = number if coercible and abs(number) <= _INT_MAX else None
    return document, variables, coerced


@fuzzing(
    max_examples=max(EXAMPLES // 5, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=_first_values())
async def test_every_spelling_of_first_is_counted_by_its_coerced_value(
    client: httpx.AsyncClient, case: tuple[str, str, int | None]
) -> None:
    document, variables, coerced = case
    content = f'{{"query": {json.dumps(document)}, "variables": {variables}}}'
    headers = {**CALLERS["user"], "content-type": "application/json"}
    response = await asyncio.wait_for(
        client.post("/graphql", content=content, headers=headers), TIMEOUT
    )
    body = response.json()
    _check_body(response.status_code, body, content)
    refused_for_cost = "over MAX_QUERY_COST" in json.dumps(body.get("errors"))
    if coerced is None:
        # A literal default out of range fails validation; a variable fails coercion.
        codes = {e["extensions"]["code"] for e in body["errors"]}
        assert codes <= {"BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"}, (body, content)
        assert not refused_for_cost, (body, content)
        return
    pages = document.count("recentActivities")
    cost = pages * (1 + 18 * max(coerced, 0))
    assert refused_for_cost == (cost > 5000), (cost, body, content)


_MESSAGE_TYPES = {
    TRANSPORT_WS: ["subscribe", "complete", "ping", "pong", "connection_init"],
    LEGACY_WS: ["start", "stop", "connection_init", "connection_terminate"],
}
_PROBES = {
    # A round trip proving the socket still works: ping/pong, or an operation's error.
    TRANSPORT_WS: ({"type": "ping"}, "pong"),
    LEGACY_WS: ({"type": "start", "id": "probe", "payload": {"query": "{ __typename }"}}, "error"),
}
_EXPECTED_CLOSES = {
    TRANSPORT_WS: {4400, 4409, 4429, 1009},
    LEGACY_WS: {4400, 4429, 1009, 1000},  # 1000: connection_terminate
}


def _frames(protocol: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        _json,
        st.fixed_dictionaries(
            {"type": st.sampled_from(_MESSAGE_TYPES[protocol])},
            optional={
                "id": st.one_of(st.text(max_size=5), _json),
                "payload": st.one_of(
                    _json,
                    st.fixed_dictionaries(
                        {"query": st.one_of(st.text(max_size=40), _json)},
                        optional={"variables": _json, "operationName": _json},
                    ),
                    st.fixed_dictionaries(
                        {"query": from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS)},
                        optional={"variables": _json},
                    ),
                ),
            },
        ),
    )


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@fuzzing(
    max_examples=max(EXAMPLES * 3 // 20, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_arbitrary_frames_never_crash_the_socket(
    app: FastAPI, protocol: str, data: st.DataObject
) -> None:
    frames = data.draw(st.lists(_frames(protocol), min_size=1, max_size=4), label="frames")
    probe, reply = _PROBES[protocol]
    async with websocket(app, protocol) as ws:
        await ws.send_json(
            {
                "type": "connection_init",
                "payload": {"authorization": CALLERS["admin"]["Authorization"]},
            }
        )
        assert (await ws.receive_json(timeout=TIMEOUT))["type"] == "connection_ack"
        with contextlib.suppress(LocalProtocolError):  # the server closed while we sent
            for frame in frames:
                await ws.send_text(json.dumps(frame))
            await ws.send_json(probe)
        closed: WebSocketDisconnect | None = None
        try:
            while True:
                message = await asyncio.wait_for(ws.receive_json(), TIMEOUT)
                if message.get("type") in ("next", "data", "error"):
                    _check_body(200, {"errors": _errors_of(message)}, json.dumps(frames))
                if message.get("type") == reply and message.get("id") == probe.get("id"):
                    break
        except WebSocketDisconnect as disconnect:
            closed = disconnect
        if closed is not None:
            assert closed.code in _EXPECTED_CLOSES[protocol], (closed.code, closed.reason, frames)


def _errors_of(message: dict[str, Any]) -> list[Any]:
    payload = message.get("payload")
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        return list(payload.get("errors") or [])
    return []
