"""The /dashboard reference page: when it is served, and how (the browser test is in e2e)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from gql import Settings, create_app
from gql.dashboard_page import CONTENT_SECURITY_POLICY, PAGE_DIR

from .conftest import SECRET


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        escalation_policy="",  # type: ignore[arg-type]
        **values,
    )


async def _get(settings: Settings, path: str) -> httpx.Response:
    # The page needs no service of the lifespan: it is static.
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get(path)


@pytest.mark.parametrize(
    ("values", "served"),
    [
        ({}, True),  # development
        ({"dashboard_page": False}, False),
        ({"env": "production", "jwt_secret": SECRET}, False),
        ({"env": "production", "jwt_secret": SECRET, "dashboard_page": True}, True),
    ],
    ids=["development", "turned-off", "production", "production-turned-on"],
)
async def test_served_in_development_and_where_turned_on(
    tmp_path: Path, values: dict[str, Any], served: bool
) -> None:
    settings = _settings(tmp_path, **values)
    for path in ("/dashboard", "/dashboard/app.js"):
        response = await _get(settings, path)
        assert response.status_code == (200 if served else 404), (path, response.text)


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/dashboard", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
        ("/dashboard/icon.svg", "image/svg+xml"),
    ],
)
async def test_every_file_has_the_policy(tmp_path: Path, path: str, media_type: str) -> None:
    response = await _get(_settings(tmp_path), path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_policy_allows_this_origin_only() -> None:
    directives = dict(item.split(" ", 1) for item in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.parametrize(
    "path", ["/dashboard/index.html", "/dashboard/..%2Fsettings.py", "/dashboard/nope.js"]
)
async def test_nothing_else_is_served(tmp_path: Path, path: str) -> None:
    response = await _get(_settings(tmp_path), path)
    assert response.status_code == 404


def test_the_page_has_no_inline_code_and_no_other_host() -> None:
    html = (PAGE_DIR / "index.html").read_text()
    assert "<script>" not in html and "<style" not in html and " style=" not in html
    assert re.search(r"\son\w+=", html) is None  # no onclick= and the like
    for name in ("index.html", "app.js", "style.css"):
        text = (PAGE_DIR / name).read_text()
        assert "http://" not in text and "https://" not in text, name
    script = (PAGE_DIR / "app.js").read_text()
    # The token stays in memory: nothing is stored, logged or put in markup.
    for forbidden in ("localStorage", "sessionStorage", "document.cookie", "console.", "innerHTML"):
        assert forbidden not in script, forbidden
