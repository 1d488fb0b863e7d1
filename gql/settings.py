"""Service settings, read from environment variables by pydantic-settings."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from db.escalations import Policy, parse_policy
from sync.trace_context import available as tracing_available

from .persisted import load_manifest, parse_manifest

__all__ = ["SecuritySettings", "Settings", "describe_errors", "get_settings"]

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def _split_list(value: Any) -> Any:
    """A list setting from the environment: a JSON list, one value, or comma-separated values.

    pydantic-settings would parse the environment value as JSON only, so
    ``ALLOWED_ORIGINS=https://dash.example`` failed with a traceback.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValueError('is not a valid JSON list; write ["a", "b"] or a,b') from None
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse_policy(value: Any) -> Any:
    """``ESCALATION_POLICY`` from the environment: ``LEVEL:SECONDS,...``."""
    return parse_policy(value) if isinstance(value, str) else value


def _load_manifest(value: Any) -> Any:
    """``PERSISTED_QUERIES_MANIFEST`` from the environment: the path of a JSON manifest.

    Loaded and checked here, so that a bad file refuses to start with one line.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return parse_manifest(value)
    return load_manifest(str(value))


# Static API keys: at least 256 bits of a random string.
MIN_SECRET_LENGTH = 32


class SecuritySettings(BaseSettings):
    """Authentication, production hardening and abuse limits (see docs/security.md).

    With none of ``JWT_SECRET``, ``JWT_JWKS_URL`` or ``SERVICE_API_KEYS`` set the
    service runs in dev mode: every client is an admin, so it may only bind to
    loopback. ``ENV=production`` refuses to start in dev mode.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    env: Literal["development", "production"] = Field(
        "development",
        description="production: no introspection, suggestions or GraphiQL; masked errors.",
    )
    jwt_secret: SecretStr | None = Field(
        None,
        description="Shared HMAC secret of the main app's tokens (32+ bytes for HS256).",
        examples=["$(openssl rand -hex 32)"],
    )
    jwt_algorithm: str = Field("HS256", description="The one HMAC algorithm JWT_SECRET signs.")
    jwt_jwks_url: str | None = Field(
        None,
        description="JWKS document with the public keys of asymmetric tokens.",
        examples=["https://auth.example/.well-known/jwks.json"],
    )
    jwt_jwks_algorithm: str = Field(
        "RS256", description="The one asymmetric algorithm accepted with JWT_JWKS_URL."
    )
    jwt_audience: str | None = Field(
        None,
        description="Required `aud` claim; unset: tokens must carry no `aud`.",
        examples=["checkin-realtime"],
    )
    jwt_issuer: str | None = Field(
        None,
        description="Required `iss` claim; unset: not checked.",
        examples=["https://auth.example"],
    )
    jwt_leeway: float = Field(
        5.0, ge=0, le=300, description="Seconds of clock skew allowed on exp, nbf and iat."
    )
    service_api_keys: Annotated[list[SecretStr], NoDecode, BeforeValidator(_split_list)] = Field(
        default_factory=list,
        description="Static keys (comma-separated or a JSON list) that authenticate as role "
        "service.",
        examples=["key-one-of-32-or-more-characters,key-two-of-32-or-more-characters"],
    )
    max_query_depth: int = Field(10, ge=1, description="Deepest field nesting of an operation.")
    max_aliases: int = Field(15, ge=0, description="Aliases per document.")
    max_tokens: int = Field(2_000, ge=1, description="Lexical tokens per document.")
    max_query_cost: int = Field(
        5_000,
        ge=1,
        description="Cost an operation may have: each field 1 or the KiB it may return "
        "(metadata 16, description 2), what a list selects multiplied by first.",
    )
    max_ws_operations: int = Field(50, ge=1, description="Operations running at once per socket.")
    # Caps per principal and per instance (gql/admission.py); 0 turns a cap off.
    max_subscriptions_per_user: int = Field(
        100, ge=0, description="Operations a role-user principal runs at once on this instance."
    )
    max_subscriptions_per_service: int = Field(
        10_000, ge=0, description="Operations a service or admin principal runs at once."
    )
    max_sockets_per_user: int = Field(
        20, ge=0, description="WebSockets a role-user principal holds open on this instance."
    )
    max_sockets_per_service: int = Field(
        1_000, ge=0, description="WebSockets a service or admin principal holds open."
    )
    max_pending_sockets_per_address: int = Field(
        20, ge=0, description="WebSockets per client address not yet past connection_init."
    )
    max_connections: int = Field(
        10_000,
        ge=0,
        description="WebSockets open at once on this instance (/readyz 503 when full).",
    )
    max_ws_frame_bytes: int = Field(64 * 1024, ge=1024, description="Bytes per WebSocket frame.")
    # Each message costs the server a decode and often a parse: without a rate, one
    # socket sending subscribe/complete or ping in a loop keeps a core busy.
    ws_messages_per_second: float = Field(
        100.0, gt=0, description="WebSocket messages a socket may send per second, on average."
    )
    ws_message_burst: int = Field(
        200, ge=1, description="WebSocket messages a socket may send at once, above the rate."
    )
    # Transport (gql/cli.py hands both to uvicorn); bench/idle_memory.py measures them.
    # Not uvicorn's "websockets": it runs on websockets.legacy (deprecated) and
    # holds four more tasks per socket.
    ws_implementation: Literal["websockets-sansio", "wsproto"] = Field(
        "websockets-sansio",
        description="uvicorn's WebSocket implementation: websockets-sansio or wsproto "
        "(a little lighter per socket without deflate, much heavier with it).",
    )
    ws_per_message_deflate: bool = Field(
        False,
        description="Negotiate permessage-deflate when a client offers it (browsers do): "
        "smaller frames, but about 40 KiB of zlib state per socket.",
    )
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="Bytes per HTTP request body.")
    request_header_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds a client has to send a request's headers."
    )
    request_body_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds a client has to send a request's body."
    )
    # Response size and API docs (issue 12, amplification and production surface).
    max_response_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Bytes of one serialised result (HTTP body or WebSocket next message).",
    )
    # A client that does not read leaves frames waiting on its socket (gql/frames.py).
    max_ws_send_buffer_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Bytes of WebSocket frames waiting on one socket's sends before it is "
        "closed 1008 (at least MAX_RESPONSE_BYTES).",
    )
    # Persisted queries (gql/persisted.py): APQ's cache, or an allow-list in production.
    apq_cache_size: int = Field(
        1_000, ge=0, description="Documents the APQ cache keeps (LRU); 0 turns APQ off."
    )
    apq_max_query_bytes: int = Field(
        16 * 1024, ge=1024, description="Bytes of the longest document the APQ cache stores."
    )
    persisted_queries_manifest: Annotated[
        dict[str, str] | None, NoDecode, BeforeValidator(_load_manifest)
    ] = Field(
        None,
        description="Path of a JSON manifest (Apollo or Relay format) of the only operations "
        "that run; unset: any operation runs.",
        examples=["./persisted-query-manifest.json"],
    )
    openapi_docs: bool = Field(
        False, description="Serve FastAPI's /docs, /redoc and /openapi.json (never in production)."
    )

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def auth_enabled(self) -> bool:
        """False in dev mode: no secret, no JWKS URL and no API key configured."""
        return bool(self.jwt_secret or self.jwt_jwks_url or self.service_api_keys)

    @model_validator(mode="after")
    def _check_security(self) -> Self:
        if self.jwt_algorithm not in HMAC_ALGORITHMS:
            raise ValueError(f"JWT_ALGORITHM must be one of {sorted(HMAC_ALGORITHMS)}")
        if self.jwt_jwks_algorithm not in ASYMMETRIC_ALGORITHMS:
            raise ValueError(f"JWT_JWKS_ALGORITHM must be one of {sorted(ASYMMETRIC_ALGORITHMS)}")
        # RFC 7518 section 3.2: at least as long as the hash output (32, 48 or 64 bytes).
        min_secret = int(self.jwt_algorithm[2:]) // 8
        if self.jwt_secret is not None and (
            len(self.jwt_secret.get_secret_value().encode()) < min_secret
        ):
            raise ValueError(
                f"JWT_SECRET must be at least {min_secret} bytes for {self.jwt_algorithm}"
            )
        if any(len(key.get_secret_value()) < MIN_SECRET_LENGTH for key in self.service_api_keys):
            raise ValueError(f"each SERVICE_API_KEYS entry must be {MIN_SECRET_LENGTH}+ characters")
        if self.jwt_jwks_url is not None and not self.jwt_jwks_url.startswith("https://"):
            raise ValueError("JWT_JWKS_URL must be an https:// URL")
        if self.production and not self.auth_enabled:
            raise ValueError(
                "ENV=production needs authentication: set JWT_SECRET, JWT_JWKS_URL "
                "or SERVICE_API_KEYS"
            )
        return self


class Settings(SecuritySettings):
    """Every knob of the service. Environment variable names are the field names in upper case.

    Durations are in seconds.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = Field(
        "sqlite+aiosqlite:///./checkin.db",
        description="SQLAlchemy async URL of the source of truth: sqlite+aiosqlite:///... "
        "(one process) or postgresql+asyncpg://... (any number of instances).",
    )
    realtime_url: str = Field(
        "memory://",
        description="Realtime store: memory:// or redis://host:port/db?prefix=...; "
        "empty for none (reads hit the DB).",
    )
    broadcast_url: str = Field(
        "memory://",
        description="Broadcast channels: memory:// (one process), redis://host:port/db?prefix=... "
        "or postgres://... (postgresql+asyncpg:// is accepted too).",
    )
    store_window: int = Field(100, ge=1, le=10_000, description="Activities kept per user.")
    # Memory store budget: bytes as well as users (issue 12, finding 10).
    store_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024 * 1024,
        description="Estimated bytes of user state a memory:// store keeps; the least recently "
        "used users are evicted beyond it (and read from the database).",
    )
    subscriber_queue: int = Field(
        1_000, ge=1, description="Events a subscriber may have unread before it is cut off."
    )
    relay_batch_size: int = Field(500, ge=1, description="Outbox entries claimed per round.")
    relay_poll_interval: float = Field(
        0.5, gt=0, description="Seconds between relay rounds without a local write."
    )
    outbox_retention: float = Field(
        24 * 3600.0, gt=0, description="Seconds a published outbox entry is kept."
    )
    write_wait: float = Field(
        2.0,
        ge=0,
        description="Seconds a mutation waits for its change to reach the store.",
    )
    connection_init_timeout: float = Field(
        5.0, gt=0, description="Seconds a WebSocket client has to send connection_init."
    )
    graphiql: bool = Field(True, description="Serve GraphiQL at GET /graphql.")
    shutdown_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds `serve` takes at most from SIGTERM to exit: drain requests, "
        "flush the relay, close WebSockets with 1001.",
    )
    dashboard_page: bool | None = Field(
        None,
        description="Serve the reference dashboard page at GET /dashboard; unset: on in "
        "development, off in production.",
        examples=["true"],
    )
    # Escalation of missed check-ins (sync/escalation.py): LEVEL:SECONDS after nextDue,
    # levels and delays rising together; empty turns escalation off.
    escalation_policy: Annotated[Policy, NoDecode, BeforeValidator(_parse_policy)] = Field(
        default_factory=lambda: parse_policy("WARNING:0,ALERT:900,EMERGENCY:3600"),
        description="Seconds after nextDue at which alertLevel rises to each level "
        "(LEVEL:SECONDS,...); empty: no escalation.",
        examples=["WARNING:0,ALERT:900,EMERGENCY:3600"],
    )
    allowed_origins: Annotated[list[str], NoDecode, BeforeValidator(_split_list)] = Field(
        default_factory=list,
        description="Origins allowed to open cross-origin WebSockets (comma-separated or a "
        "JSON list; '*' for any).",
        examples=["https://dash.example,https://ops.example"],
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as readable text, or one JSON object per line."
    )
    tracing: bool = Field(
        False,
        description="Make OpenTelemetry spans (needs the otel extra); they go to the "
        "global tracer provider, or to OTLP over HTTP (OTEL_EXPORTER_OTLP_ENDPOINT).",
    )

    @model_validator(mode="after")
    def _check_send_buffer(self) -> Self:
        # One result of the largest size must always fit.
        if self.max_ws_send_buffer_bytes < self.max_response_bytes:
            raise ValueError("MAX_WS_SEND_BUFFER_BYTES must be at least MAX_RESPONSE_BYTES")
        return self

    @field_validator("tracing")
    @classmethod
    def _check_tracing(cls, value: bool) -> bool:
        if value and not tracing_available():
            raise ValueError("needs OpenTelemetry: pip install 'checkin-realtime[otel]'")
        return value


# Never echoed back in an error message: they end up in logs.
_SECRET_FIELDS = frozenset({"jwt_secret", "service_api_keys"})


def describe_errors(error: ValidationError | SettingsError) -> list[str]:
    """One line per invalid setting: the variable, what is wrong with its value, an example."""
    if isinstance(error, SettingsError):
        # pydantic-settings could not even decode a value; its message names the field.
        return [f"invalid setting: {error}"]
    lines = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:
            lines.append(f"invalid settings: {message}")
            continue
        name = str(item["loc"][0])
        variable = name.upper()
        shown = "<hidden>" if name in _SECRET_FIELDS else repr(item.get("input"))[:60]
        lines.append(
            f"invalid setting {variable}={shown}: {message} (example: {variable}={_example(name)})"
        )
    return lines


def _example(name: str) -> str:
    field = Settings.model_fields.get(name)
    if field is None:
        return "..."
    if field.examples:
        return str(field.examples[0])
    default = field.get_default(call_default_factory=True)
    if isinstance(default, list):
        return ",".join(map(str, default)) or "a,b"
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def get_settings() -> Settings:
    """Read the settings from the environment (call once, then pass the object down)."""
    return Settings()
