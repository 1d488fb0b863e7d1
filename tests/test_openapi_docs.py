"""FastAPI's /docs, /redoc and /openapi.json: off unless OPENAPI_DOCS=true, never in production."""

from __future__ import annotations

import httpx
import pytest

from gql import Settings, create_app

from .conftest import secure

PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


async def status_codes(settings: Settings) -> set[int]:
    # These routes need no lifespan: the app is not started.
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        return {(await http.get(path)).status_code for path in PATHS}


@pytest.mark.parametrize(
    "changes",
    [{}, {"env": "production"}, {"env": "production", "openapi_docs": True}],
    ids=["default", "production", "production-asked"],
)
async def test_api_docs_are_not_served(changes: dict[str, object]) -> None:
    settings = secure(Settings.model_construct(), **changes)
    assert await status_codes(settings) == {404}


async def test_api_docs_are_served_when_asked_for_outside_production() -> None:
    assert await status_codes(Settings(openapi_docs=True)) == {200}
