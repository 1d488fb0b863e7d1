"""GraphiQL served with its scripts and styles from this app, not from a CDN.

Strawberry's GraphiQL page loads React, GraphiQL and the explorer plugin from
unpkg.com. Deployments without internet access (and strict CSPs) cannot load
them, so copies of exactly those files ship in ``gql/static/graphiql``, laid
out like the CDN's URLs, and the page is rewritten to load them from
:data:`ASSETS_PATH`. The page's ``integrity`` attributes still apply: the
browser refuses a copy that differs from what the page expects.

The page opens on :data:`DEFAULT_DOCUMENT`, an example of this API (a query, a
mutation and a subscription, and in which order to run them), instead of
GraphiQL's generic welcome text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from strawberry.fastapi import GraphQLRouter
from strawberry.http.ides import get_graphql_ide_html

__all__ = ["ASSETS_DIR", "ASSETS_PATH", "CDN", "DEFAULT_DOCUMENT", "GraphiQLRouter", "cdn_urls"]

CDN = "https://unpkg.com/"
ASSETS_PATH = "/static/graphiql/"
ASSETS_DIR = Path(__file__).with_name("static") / "graphiql"

DEFAULT_DOCUMENT = """\
# checkin-realtime. Run the operations below with the Run button (Ctrl-Enter);
# it asks which one. In this order:
#
# 1. CheckIn first: the mutation records a check-in of user u1, which gives
#    u1 a status and an activity.
# 2. Status: the query reads u1's status and latest activities back.
# 3. WatchStatus: the subscription sends u1's status now, then each change.
#    Leave it running, open a new tab (+), paste CheckIn there and run it:
#    the change appears here at once.
#
# Dev mode needs no token. Otherwise set the headers (below) to
# {"Authorization": "Bearer <token>"}.

mutation CheckIn {
  recordCheckIn(input: {userId: "u1", intervalSeconds: 3600}) {
    activity { seq type timestamp }
    status { alertLevel lastCheckIn nextDue version }
  }
}

query Status {
  userStatus(userId: "u1") { alertLevel lastCheckIn nextDue version }
  recentActivities(userId: "u1", first: 5) {
    edges { node { seq type description timestamp } }
  }
}

subscription WatchStatus {
  userStatusChanged(userId: "u1") { seq alertLevel nextDue version }
}
"""
"""The document GraphiQL opens on (a ``?q=`` in the page's URL still wins)."""

# Strawberry's page opens on this JavaScript template literal.
_EXAMPLE_QUERY = re.compile(r"const EXAMPLE_QUERY = `.*?`;", re.DOTALL)


def _with_default_document(page: str) -> str:
    # A JSON string is a JavaScript string literal; the document holds no "</".
    literal = json.dumps(DEFAULT_DOCUMENT)
    return _EXAMPLE_QUERY.sub(lambda _: f"const EXAMPLE_QUERY = {literal};", page, count=1)


def cdn_urls() -> list[str]:
    """The CDN URLs Strawberry's GraphiQL page references."""
    return sorted(set(re.findall(r'https://unpkg\.com/[^"\']+', get_graphql_ide_html("graphiql"))))


class GraphiQLRouter(GraphQLRouter[Any, None]):
    """A :class:`GraphQLRouter` whose GraphiQL page loads its assets from this app."""

    @property
    def graphql_ide_html(self) -> str:
        return _with_default_document(super().graphql_ide_html.replace(CDN, ASSETS_PATH))

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a persisted query has no ``query`` parameter either, but
        # asks for a result whatever its Accept header says.
        return super().should_render_graphql_ide(request) and (
            request.query_params.get("extensions") is None
        )
