"""GraphiQL served with its scripts and styles from this app, not from a CDN.

Strawberry's GraphiQL page loads React, GraphiQL and the explorer plugin from
unpkg.com. Deployments without internet access (and strict CSPs) cannot load
them, so copies of exactly those files ship in ``gql/static/graphiql``, laid
out like the CDN's URLs, and the page is rewritten to load them from
:data:`ASSETS_PATH`. The page's ``integrity`` attributes still apply: the
browser refuses a copy that differs from what the page expects.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from strawberry.fastapi import GraphQLRouter
from strawberry.http.ides import get_graphql_ide_html

__all__ = ["ASSETS_DIR", "ASSETS_PATH", "CDN", "GraphiQLRouter", "cdn_urls"]

CDN = "https://unpkg.com/"
ASSETS_PATH = "/static/graphiql/"
ASSETS_DIR = Path(__file__).with_name("static") / "graphiql"


def cdn_urls() -> list[str]:
    """The CDN URLs Strawberry's GraphiQL page references."""
    return sorted(set(re.findall(r'https://unpkg\.com/[^"\']+', get_graphql_ide_html("graphiql"))))


class GraphiQLRouter(GraphQLRouter[Any, None]):
    """A :class:`GraphQLRouter` whose GraphiQL page loads its assets from this app."""

    @property
    def graphql_ide_html(self) -> str:
        return super().graphql_ide_html.replace(CDN, ASSETS_PATH)
