"""GraphiQL loads every asset from this app; each copy matches the page's integrity hash."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

from gql.graphiql import ASSETS_DIR, ASSETS_PATH, CDN, cdn_urls


def test_every_cdn_asset_has_a_local_copy_with_the_expected_integrity() -> None:
    from strawberry.http.ides import get_graphql_ide_html

    page = get_graphql_ide_html("graphiql")
    urls = cdn_urls()
    assert len(urls) >= 5
    for url in urls:
        local = ASSETS_DIR / url.removeprefix(CDN)
        assert local.is_file(), f"no local copy of {url}: vendor it under {ASSETS_DIR}"
        match = re.search(re.escape(url) + r'"\s+integrity="(sha\d+)-([^"]+)"', page)
        if match:
            algorithm, expected = match.groups()
            digest = hashlib.new(algorithm, local.read_bytes()).digest()
            assert base64.b64encode(digest).decode() == expected, f"{local} differs from {url}"


async def test_graphiql_page_points_at_local_assets_which_are_served(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert CDN not in page.text
    local = sorted(set(re.findall(re.escape(ASSETS_PATH) + r'[^"\']+', page.text)))
    assert len(local) == len(cdn_urls())
    for path in local:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert len(response.content) > 100
