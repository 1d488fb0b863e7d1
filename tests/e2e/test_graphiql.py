"""GraphiQL at GET /graphql, driven in a real Chromium against the real server."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from .conftest import Server, run_node

pytestmark = pytest.mark.e2e

TEST_TIMEOUT = 28.0
BROWSER_TIMEOUT = 18.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

SEED = """
mutation Seed($input: UpdateUserStatusInput!) {
  updateUserStatus(input: $input) { alertLevel version }
}
"""
QUERY = '{ userStatus(userId:"u1"){ alertLevel version } }'
SUBSCRIPTION = 'subscription { userStatusChanged(userId:"u1"){ alertLevel version } }'


class _Assets(HTMLParser):
    """The URLs of the scripts and stylesheets a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag == "script" else None
        if tag == "link" and values.get("rel") == "stylesheet":
            url = values.get("href")
        if url:
            self.urls.append(url)


async def graphiql_page(server: Server) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as http:
        return await http.get(server.graphql_url, headers={"Accept": "text/html"})


def asset_urls(server: Server, html: str) -> tuple[list[str], list[str]]:
    """(loopback, elsewhere): the page's script and stylesheet URLs, made absolute."""
    parser = _Assets()
    parser.feed(html)
    absolute = [urljoin(server.graphql_url, url) for url in parser.urls]
    local = [url for url in absolute if urlsplit(url).hostname in LOOPBACK]
    return local, [url for url in absolute if url not in local]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_pixel_bytes(path: Path) -> bytes:
    """The decompressed (still filtered) image data of a PNG."""
    data = path.read_bytes()
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    return zlib.decompress(b"".join(chunks))


def check_screenshot(path: Path) -> None:
    """A PNG of at least the viewport that shows a rendered page, not a blank one."""
    assert path.is_file()
    assert path.stat().st_size > 10_000, "screenshot too small to show GraphiQL"
    assert png_size(path) >= (1280, 800)
    # A blank or single-colour page decompresses to a handful of byte values;
    # GraphiQL's text, icons and panes to nearly all of them.
    assert len(set(png_pixel_bytes(path))) > 128, "the screenshot shows a blank page"


async def test_graphiql_page_is_served(server: Server) -> None:
    response = await graphiql_page(server)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()
    # Every asset the page names must be there (those on this server, at least).
    local, _ = asset_urls(server, response.text)
    async with httpx.AsyncClient(timeout=10.0) as http:
        for url in local:
            asset = await http.get(url)
            assert asset.status_code == 200, f"{url}: {asset.status_code}"


async def test_graphiql_runs_a_query_in_chromium(
    node: str, chromium: str, server: Server, tmp_path: Path
) -> None:
    screenshot = tmp_path / "graphiql.png"
    async with asyncio.timeout(TEST_TIMEOUT):
        await server.execute(SEED, {"input": {"userId": "u1"}})
        seeded = await server.execute(SEED, {"input": {"userId": "u1", "alertLevel": "WARNING"}})
        assert seeded == {"updateUserStatus": {"alertLevel": "WARNING", "version": 2}}

        page = await graphiql_page(server)
        assert page.status_code == 200, page.text
        _, elsewhere = asset_urls(server, page.text)

        async with run_node(
            node,
            "graphiql.mjs",
            server.graphql_url,
            chromium,
            str(screenshot),
            QUERY,
            '"version": 2',
            str(BROWSER_TIMEOUT),
            log_dir=tmp_path,
        ) as browser:
            report = await browser.message(BROWSER_TIMEOUT + 6)
            code = await browser.wait(5.0)
    assert report is not None, browser.describe()

    # Every asset must come from this server: the tests use loopback only, and
    # deployments may have no internet access.
    assert elsewhere == [], f"GraphiQL loads assets from other hosts: {elsewhere}"
    assert code == 0, browser.describe()
    assert report["ok"] is True, report
    assert report["blockedRequests"] == [], report
    assert report["pageErrors"] == [], report
    assert report["editorText"] in (None, QUERY)
    assert json.loads(report["response"]) == {
        "data": {"userStatus": {"alertLevel": "WARNING", "version": 2}}
    }
    assert report["screenshot"] == str(screenshot)
    assert screenshot.is_file()
    assert screenshot.stat().st_size > 10_000, "screenshot too small to show GraphiQL"
    assert png_size(screenshot) >= (1280, 800)
    check_screenshot(screenshot)


async def test_graphiql_shows_a_subscription_event_caused_over_http(
    node: str, chromium: str, server: Server, tmp_path: Path
) -> None:
    # Start the subscription from the UI (graphql-transport-ws, from the page),
    # send a mutation over HTTP, see its event in the result pane.
    screenshot = tmp_path / "graphiql-subscription.png"
    async with asyncio.timeout(TEST_TIMEOUT):
        await server.execute(SEED, {"input": {"userId": "u1"}})
        await server.execute(SEED, {"input": {"userId": "u1", "alertLevel": "WARNING"}})
        async with run_node(
            node,
            "graphiql.mjs",
            server.graphql_url,
            chromium,
            str(screenshot),
            SUBSCRIPTION,
            '"version": 2',
            str(BROWSER_TIMEOUT),
            '"version": 3',
            log_dir=tmp_path,
        ) as browser:
            shown = await browser.message(BROWSER_TIMEOUT + 6)
            assert shown is not None and shown.get("step") == "shown", browser.describe()
            changed = await server.execute(SEED, {"input": {"userId": "u1", "alertLevel": "ALERT"}})
            assert changed == {"updateUserStatus": {"alertLevel": "ALERT", "version": 3}}
            report = await browser.message(BROWSER_TIMEOUT + 6)
            code = await browser.wait(5.0)
    assert report is not None, browser.describe()
    assert code == 0, browser.describe()
    assert report["ok"] is True, report
    assert report["blockedRequests"] == [], report
    assert report["pageErrors"] == [], report
    assert report["editorText"] in (None, SUBSCRIPTION)
    # The snapshot first, then the event the mutation caused, in the same pane.
    assert json.loads(shown["response"]) == {
        "data": {"userStatusChanged": {"alertLevel": "WARNING", "version": 2}}
    }
    assert json.loads(report["response"]) == {
        "data": {"userStatusChanged": {"alertLevel": "ALERT", "version": 3}}
    }
    assert report["screenshot"] == str(screenshot)
    check_screenshot(screenshot)
