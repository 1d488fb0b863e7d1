"""Token verification (RFC 7519 claims, algorithm pinning), API keys and the security settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from gql import Settings
from gql.auth import DEV_ADMIN, AuthenticationError, Authenticator, Principal, Role

from .conftest import API_KEY, AUDIENCE, ISSUER, SECRET, secure, token


@pytest.fixture
def authenticator(settings: Settings) -> Authenticator:
    return Authenticator(secure(settings))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_by_hand(payload: dict[str, Any], key: bytes, alg: str = "HS256") -> str:
    """A token PyJWT would refuse to create: HMAC keyed with anything, any ``alg`` header."""
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "u1", "exp": now + 300, "aud": AUDIENCE, "iss": ISSUER, **changes}


async def _refused(authenticator: Authenticator, value: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await authenticator.authenticate(f"Bearer {value}")
    return str(caught.value)


async def test_valid_token_gives_the_subject_and_role(authenticator: Authenticator) -> None:
    principal = await authenticator.authenticate(f"Bearer {token('u1')}")
    assert principal is not None
    assert (principal.user_id, principal.role) == ("u1", Role.USER)
    assert principal.expires_at is not None
    admin = await authenticator.authenticate(f"bearer {token('ops', role='admin')}")
    assert admin is not None
    assert admin.role is Role.ADMIN


async def test_no_credentials_is_anonymous_not_an_error(authenticator: Authenticator) -> None:
    assert await authenticator.authenticate(None) is None


async def test_forged_signature_is_refused(authenticator: Authenticator) -> None:
    forged = token("u1", role="admin", secret="another-secret-that-is-also-long-enough-for-hs256")
    assert "signature" in await _refused(authenticator, forged)


async def test_tampered_payload_is_refused(authenticator: Authenticator) -> None:
    header, _, signature = token("u1").split(".")
    payload = _b64(json.dumps(_claims(role="admin")).encode())
    assert "signature" in await _refused(authenticator, f"{header}.{payload}.{signature}")


async def test_expired_token_is_refused(authenticator: Authenticator) -> None:
    assert "expired" in await _refused(authenticator, token("u1", expires_in=-5))


async def test_alg_none_is_refused(authenticator: Authenticator) -> None:
    unsigned = jwt.encode(_claims(role="admin"), None, algorithm="none")
    assert "not accepted" in await _refused(authenticator, unsigned)


async def test_another_hmac_algorithm_is_refused(authenticator: Authenticator) -> None:
    assert "not accepted" in await _refused(authenticator, token(algorithm="HS512"))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "another-service"}, "audience"),
        ({"aud": None}, "'aud'"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"iss": None}, "'iss'"),
        ({"exp": None}, "'exp'"),
        ({"sub": None}, "'sub'"),
        ({"role": "root"}, "role"),
        ({"sub": ""}, "sub"),
        ({"nbf": int(time.time()) + 600}, "invalid"),
    ],
)
async def test_claims_are_checked(
    authenticator: Authenticator, changes: dict[str, Any], reason: str
) -> None:
    claims = {k: v for k, v in _claims(**changes).items() if v is not None}
    assert reason in await _refused(authenticator, jwt.encode(claims, SECRET, algorithm="HS256"))


async def test_malformed_authorization_is_refused(authenticator: Authenticator) -> None:
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", token()):
        with pytest.raises(AuthenticationError):
            await authenticator.authenticate(value)
    assert "not a JWT" in await _refused(authenticator, "not-a-token")


async def test_service_api_key_is_role_service(authenticator: Authenticator) -> None:
    principal = await authenticator.authenticate(f"Bearer {API_KEY}")
    assert principal == Principal("api-key:0", Role.SERVICE)
    await _refused(authenticator, API_KEY[:-1] + "x")


async def test_dev_mode_makes_everyone_admin(settings: Settings) -> None:
    dev = Authenticator(settings)
    assert dev.dev_mode
    assert await dev.authenticate(None) is DEV_ADMIN
    assert await dev.authenticate("Bearer garbage") is DEV_ADMIN


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


JWKS_URL = "https://auth.example.test/.well-known/jwks.json"


class FakeJWKS(jwt.PyJWKClient):
    """A JWKS client serving one key set from memory (no network in tests)."""

    def __init__(self, keys: dict[str, Any]) -> None:
        super().__init__(JWKS_URL)
        self.keys = keys

    def fetch_data(self) -> Any:
        return self.keys


@pytest.fixture
def jwks(rsa_key: rsa.RSAPrivateKey) -> FakeJWKS:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    return FakeJWKS({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})


async def test_jwks_rs256_token_is_accepted(
    settings: Settings, jwks: FakeJWKS, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_settings = secure(settings, jwt_secret=None, jwt_jwks_url=JWKS_URL)
    authenticator = Authenticator(jwks_settings, jwks_client=jwks)
    signed = jwt.encode(_claims(role="service"), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    principal = await authenticator.authenticate(f"Bearer {signed}")
    assert principal is not None
    assert principal.role is Role.SERVICE
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(_claims(), other, algorithm="RS256", headers={"kid": "k1"})
    assert "signature" in await _refused(authenticator, forged)
    unknown = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "k9"})
    assert "unknown" in await _refused(authenticator, unknown)


async def test_algorithm_confusion_is_refused(
    settings: Settings, jwks: FakeJWKS, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The classic attack: HS256 "signed" with the RSA public key as the HMAC secret.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = _hs256_by_hand(_claims(role="admin"), public_pem)
    jwks_only = Authenticator(
        secure(settings, jwt_secret=None, jwt_jwks_url=JWKS_URL), jwks_client=jwks
    )
    assert "not accepted" in await _refused(jwks_only, confused)
    both = Authenticator(secure(settings, jwt_jwks_url=JWKS_URL), jwks_client=jwks)
    assert "signature" in await _refused(both, confused)
    # And an RS256 header on an HMAC signature is refused too.
    assert await _refused(both, _hs256_by_hand(_claims(), SECRET.encode(), alg="RS256"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jwt_secret": "short"}, "at least 32 bytes"),
        ({"jwt_algorithm": "HS512", "jwt_secret": "x" * 63}, "at least 64 bytes"),
        ({"jwt_algorithm": "none"}, "JWT_ALGORITHM"),
        ({"jwt_algorithm": "RS256"}, "JWT_ALGORITHM"),
        ({"jwt_jwks_algorithm": "HS256"}, "JWT_JWKS_ALGORITHM"),
        ({"service_api_keys": ["short"]}, "SERVICE_API_KEYS"),
        ({"jwt_jwks_url": "http://auth.example.test/jwks.json"}, "https"),
        ({"env": "production", "jwt_secret": None, "service_api_keys": []}, "JWT_SECRET"),
    ],
)
def test_unsafe_settings_are_refused(
    settings: Settings, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        secure(settings, **changes)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("SERVICE_API_KEYS", json.dumps([API_KEY]))
    monkeypatch.setenv("ENV", "production")
    settings = Settings()
    assert settings.auth_enabled
    assert settings.production
    assert settings.service_api_keys[0].get_secret_value() == API_KEY
    assert SECRET not in repr(settings)


async def test_without_a_configured_audience_tokens_with_aud_are_refused(
    settings: Settings,
) -> None:
    authenticator = Authenticator(secure(settings, jwt_audience=None, jwt_issuer=None))
    assert "audience" in await _refused(authenticator, token("u1"))
    principal = await authenticator.authenticate(f"Bearer {token('u1', aud=None)}")
    assert principal is not None
