"""Service settings, read from environment variables by pydantic-settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
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
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to open cross-origin WebSockets (JSON list; '*' for any).",
    )


def get_settings() -> Settings:
    """Read the settings from the environment (call once, then pass the object down)."""
    return Settings()
