"""The reference dashboard page at ``/dashboard``: three static files, a strict CSP.

The page (``gql/static/dashboard``) is plain HTML, CSS and one JavaScript
module speaking graphql-transport-ws to ``/graphql``: no build step, nothing
from another host. Like GraphiQL it is on in development and off in
production, where ``DASHBOARD_PAGE=true`` turns it on (the page then asks for
a token). Every file is served with a Content-Security-Policy that allows
only this origin and no inline script or style, so a user id or activity
text that reached the page could not run as code even if it were inserted
as markup (the page inserts text only).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from .settings import Settings

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE_DIR", "PAGE_PATH", "create_page_router", "enabled"]

PAGE_PATH = "/dashboard"
PAGE_DIR = Path(__file__).with_name("static") / "dashboard"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        # 'self' covers ws:// and wss:// to this host (CSP Level 3).
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# The page's files, and nothing else of the directory.
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


def enabled(settings: Settings) -> bool:
    """Whether to serve the page: ``DASHBOARD_PAGE``, or when unset, outside production."""
    if settings.dashboard_page is not None:
        return settings.dashboard_page
    return not settings.production


def create_page_router() -> APIRouter:
    """``GET /dashboard`` (the page) and ``GET /dashboard/<file>`` (its script, style, icon)."""
    router = APIRouter(include_in_schema=False)

    @router.get(PAGE_PATH)
    async def page() -> FileResponse:
        return FileResponse(
            PAGE_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_HEADERS
        )

    @router.get(PAGE_PATH + "/{name}")
    async def asset(name: str) -> FileResponse:
        media_type = _ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, "Not Found")
        return FileResponse(PAGE_DIR / name, media_type=media_type, headers=_HEADERS)

    return router
