"""Correctly signed tokens whose claims have the wrong type or range are refused, never a 500."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx_ws import WebSocketDisconnect

from gql import Settings
from gql.auth import AuthenticationError, Authenticator

from .conftest import AUDIENCE, ISSUER, SECRET, GraphQLClient, secure, websocket

# Claims are built at collection: their exp must outlive the whole run.
NOW = int(time.time())
LIFETIME = 6 * 3600
BAD_CLAIMS = {
    "role-list": {"role": ["admin"]},
    "role-object": {"role": {"admin": True}},
    "role-number": {"role": 1},
    "sub-number": {"sub": 42},
    "sub-list": {"sub": ["u1"]},
    "sub-nul": {"sub": "u\x001"},
    "sub-surrogate": {"sub": "u\ud8001"},
    "exp-past-9999": {"exp": 10**13},
    "exp-string": {"exp": str(NOW + LIFETIME)},
    "exp-bool": {"exp": True},
    "exp-negative": {"exp": -1},
    "exp-float-huge": {"exp": 1e300},
    "nbf-string": {"nbf": "0"},
    "iat-past-9999": {"iat": 10**13},
}
# Without JWT_AUDIENCE, a token carrying `aud` in any form was meant for someone else.
AUD_FORMS = {"aud-empty-list": [], "aud-empty-string": "", "aud-list": [AUDIENCE]}


def _signed(**changes: Any) -> str:
    claims = {"sub": "u1", "exp": NOW + LIFETIME, "aud": AUDIENCE, "iss": ISSUER, **changes}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return secure(settings)


@pytest.mark.parametrize("changes", BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
async def test_bad_claim_types_are_refused(settings: Settings, changes: dict[str, Any]) -> None:
    with pytest.raises(AuthenticationError, match="token"):
        await Authenticator(settings).authenticate(f"Bearer {_signed(**changes)}")


@pytest.mark.parametrize("aud", AUD_FORMS.values(), ids=AUD_FORMS.keys())
async def test_any_aud_is_refused_without_a_configured_audience(
    settings: Settings, aud: object
) -> None:
    authenticator = Authenticator(secure(settings, jwt_audience=None, jwt_issuer=None))
    with pytest.raises(AuthenticationError, match="audience"):
        await authenticator.authenticate(f"Bearer {_signed(aud=aud)}")
    claims = {"sub": "u1", "exp": NOW + LIFETIME}
    assert await authenticator.authenticate(f"Bearer {jwt.encode(claims, SECRET)}") is not None


def test_a_forged_token_is_refused_for_its_signature_before_its_claims(
    settings: Settings,
) -> None:
    forged = jwt.encode({"sub": 42, "exp": "x"}, "another-secret-long-enough-for-hs256-0123456")
    with pytest.raises(AuthenticationError, match="signature"):
        Authenticator(settings)._decode(forged, key=SECRET, algorithm="HS256")


@pytest.mark.parametrize("changes", BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
async def test_bad_claims_over_http_are_401_unauthenticated(
    graphql: GraphQLClient, changes: dict[str, Any]
) -> None:
    response = await graphql.http.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"authorization": f"Bearer {_signed(**changes)}"},
    )
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize("changes", [BAD_CLAIMS["role-list"], BAD_CLAIMS["exp-past-9999"]])
async def test_bad_claims_at_connection_init_close_4403(
    app: FastAPI, protocol: str, changes: dict[str, Any]
) -> None:
    payload = {"authorization": f"Bearer {_signed(**changes)}"}
    async with websocket(app, protocol) as ws:
        await ws.send_text(json.dumps({"type": "connection_init", "payload": payload}))
        if protocol == "graphql-ws":
            assert json.loads(await ws.receive_text(timeout=3))["type"] == "connection_error"
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text(timeout=3)
    assert closed.value.code == 4403
