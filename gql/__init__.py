"""The GraphQL surface: schema, resolvers, context and the ASGI app."""

from .app import create_app
from .schema import create_schema, schema_sdl
from .settings import Settings, get_settings

__all__ = ["Settings", "create_app", "create_schema", "get_settings", "schema_sdl"]
