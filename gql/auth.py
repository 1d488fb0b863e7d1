"""Identity: who sent a request, from a bearer JWT or a static service API key.

Clients send ``Authorization: Bearer <token>`` over HTTP and, over WebSocket,
``connection_init`` with the payload ``{"authorization": "Bearer <token>"}``.

A JWT (RFC 7519) is verified with PyJWT against exactly one algorithm per key
source: ``JWT_ALGORITHM`` (HMAC, default HS256) with ``JWT_SECRET``, and
``JWT_JWKS_ALGORITHM`` (default RS256) with the keys of ``JWT_JWKS_URL``. The
algorithm named by the token's header only selects among those configured
pairs, so ``alg: none`` and algorithm confusion (an RS256 public key used as an
HS256 secret) are refused before any signature check. Claims:

* ``sub`` (required): the user id.
* ``exp`` (required): expiry, seconds since the epoch; ``nbf`` and ``iat`` are
  checked when present. ``JWT_LEEWAY`` seconds of clock skew are allowed.
* ``aud`` and ``iss``: required and checked when ``JWT_AUDIENCE`` /
  ``JWT_ISSUER`` are set.
* ``role`` (optional): ``user`` (default), ``service`` or ``admin``.

A bearer value equal to one of ``SERVICE_API_KEYS`` (compared in constant
time) authenticates as role ``service``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import jwt
from jwt.types import Options

from .settings import SecuritySettings

__all__ = [
    "DEV_ADMIN",
    "AuthenticationError",
    "Authenticator",
    "Principal",
    "Role",
]

logger = logging.getLogger(__name__)


class Role(StrEnum):
    """What a principal may do; the rules are in :mod:`gql.permissions`."""

    USER = "user"
    SERVICE = "service"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Attributes:
        user_id: the JWT ``sub``; ``api-key:<n>`` for the n-th service API key.
        role: the JWT ``role`` claim, ``user`` when absent.
        expires_at: the JWT ``exp`` in UTC; ``None`` for API keys and dev mode.
    """

    user_id: str
    role: Role
    expires_at: datetime | None = None

    def may_act_for(self, user_id: str) -> bool:
        """Whether this principal may read or write ``user_id``'s data."""
        return self.role is not Role.USER or self.user_id == user_id


DEV_ADMIN = Principal(user_id="dev", role=Role.ADMIN)
"""Everyone, in dev mode (no JWT_SECRET, JWT_JWKS_URL or SERVICE_API_KEYS)."""


class AuthenticationError(Exception):
    """Credentials were sent but are not valid. ``str(error)`` is safe to show the client."""


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization`` value (RFC 6750 section 2.1; scheme case-insensitive).

    Raises:
        AuthenticationError: not ``Bearer <token>``.
    """
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthenticationError("authorization must be 'Bearer <token>'")
    return token


class Authenticator:
    """Turns an ``Authorization`` value into a :class:`Principal`.

    Constructing it does no I/O; JWKS keys are fetched on first use and cached
    by PyJWT's ``PyJWKClient``.

    Args:
        settings: the security settings.
        jwks_client: a pre-built client, e.g. for tests; default: one for
            ``settings.jwt_jwks_url``.
    """

    def __init__(
        self, settings: SecuritySettings, *, jwks_client: jwt.PyJWKClient | None = None
    ) -> None:
        self.settings = settings
        self.dev_mode = not settings.auth_enabled
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._api_keys = [key.get_secret_value().encode() for key in settings.service_api_keys]
        if jwks_client is None and settings.jwt_jwks_url:
            jwks_client = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, timeout=5)
        self._jwks = jwks_client
        self._required = ["exp", "sub"]
        if settings.jwt_audience is not None:
            self._required.append("aud")
        if settings.jwt_issuer is not None:
            self._required.append("iss")

    async def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization`` value.

        Returns:
            :data:`DEV_ADMIN` in dev mode whatever is sent; otherwise ``None``
            when nothing is sent (the permission layer then refuses every field).

        Raises:
            AuthenticationError: a value was sent and it is not a valid token or key.
        """
        if self.dev_mode:
            return DEV_ADMIN
        if authorization is None:
            return None
        token = bearer_token(authorization)
        if (principal := self._api_key(token)) is not None:
            return principal
        return await self._jwt(token)

    def _api_key(self, token: str) -> Principal | None:
        candidate = token.encode()
        found: int | None = None
        # Compare against every key, so timing says nothing about which one matched.
        for index, key in enumerate(self._api_keys):
            if hmac.compare_digest(candidate, key) and found is None:
                found = index
        return None if found is None else Principal(f"api-key:{found}", Role.SERVICE)

    async def _jwt(self, token: str) -> Principal:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise AuthenticationError("token is not a JWT") from None
        claims = self._decode(token, key=await self._key(token, algorithm), algorithm=algorithm)
        check_claim_types(claims, audience=self.settings.jwt_audience)
        return _principal(claims)

    async def _key(self, token: str, algorithm: object) -> Any:
        if algorithm == self.settings.jwt_algorithm and self._secret is not None:
            return self._secret
        if algorithm == self.settings.jwt_jwks_algorithm and self._jwks is not None:
            return await self._jwks_key(token)
        raise AuthenticationError(f"token algorithm {algorithm!r:.20} is not accepted")

    def _decode(self, token: str, *, key: Any, algorithm: object) -> dict[str, Any]:
        try:
            # The signature first, with the date checks off: PyJWT would coerce a
            # string exp and overflow on a huge one before we could look at it.
            signed = jwt.decode(token, key, algorithms=[str(algorithm)], options=_SIGNATURE_ONLY)
            check_claim_types(signed, audience=self.settings.jwt_audience)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway,
                options={"require": self._required, "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("token signature is invalid") from None
        except jwt.PyJWTError:
            raise AuthenticationError("token is invalid") from None
        return claims

    async def _jwks_key(self, token: str) -> Any:
        assert self._jwks is not None
        try:
            # PyJWKClient fetches with blocking urllib; keep it off the event loop.
            signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning("JWKS fetch from %s failed: %s", self.settings.jwt_jwks_url, exc)
            raise AuthenticationError("signing keys are unavailable") from None
        except jwt.PyJWTError:
            raise AuthenticationError("token signing key is unknown") from None
        return signing_key.key


_SIGNATURE_ONLY: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
}
# NumericDate claims (RFC 7519 section 2) must fall in years 1970-9999: beyond
# that a datetime cannot hold them, and no real token needs them.
MAX_NUMERIC_DATE = 253_402_300_799
_ROLES = frozenset(role.value for role in Role)


def _is_user_id(value: object) -> bool:
    if not isinstance(value, str) or not value or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def check_claim_types(claims: dict[str, Any], *, audience: str | None) -> None:
    """Refuse claims of the wrong type or range, which PyJWT coerces or lets through.

    ``sub`` (when present) must be a non-empty string, ``role`` (when present) one of the
    :class:`Role` values, ``exp``/``nbf``/``iat`` numbers in years 1970-9999.
    With no ``audience`` configured, a token carrying ``aud`` in any form
    (including ``[]`` or ``""``) is refused: it was meant for someone else.

    Raises:
        AuthenticationError: the first claim that is not acceptable.
    """
    # A missing sub or exp is reported by PyJWT's required-claims check.
    if "sub" in claims and (not _is_user_id(claims["sub"])):
        raise AuthenticationError("token 'sub' must be a non-empty string of valid text")
    role = claims.get("role", Role.USER.value)
    if not isinstance(role, str) or role not in _ROLES:
        raise AuthenticationError("token 'role' must be user, service or admin")
    for name in ("exp", "nbf", "iat"):
        if name not in claims:
            continue
        value = claims[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= MAX_NUMERIC_DATE
        ):
            raise AuthenticationError(
                f"token {name!r} must be a number of seconds from 0 to {MAX_NUMERIC_DATE}"
            )
    if audience is None and "aud" in claims:
        raise AuthenticationError("token audience is not accepted")


def _principal(claims: dict[str, Any]) -> Principal:
    return Principal(
        user_id=claims["sub"],
        role=Role(claims.get("role", Role.USER.value)),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )
