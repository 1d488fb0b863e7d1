"""Credentials in a URL's query string never reach the access log."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from gql.logs import REDACTED, ScrubCredentials, scrub_path

from .servers import start_server


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/graphql?token=abc", f"/graphql?token={REDACTED}"),
        ("/graphql?access_token=abc&query=x", f"/graphql?access_token={REDACTED}&query=x"),
        ("/graphql?Authorization=Bearer+abc", f"/graphql?Authorization={REDACTED}"),
        ("/graphql?api_key=abc&jwt=def", f"/graphql?api_key={REDACTED}&jwt={REDACTED}"),
        ("/graphql?query=%7B__typename%7D", "/graphql?query=%7B__typename%7D"),
        ("/graphql", "/graphql"),
    ],
)
def test_credential_query_parameters_are_redacted(path: str, expected: str) -> None:
    assert scrub_path(path) == expected


def test_the_filter_rewrites_uvicorn_access_records() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/graphql?token=sekrit", "1.1", 200),
        None,
    )
    assert ScrubCredentials().filter(record)
    assert "sekrit" not in record.getMessage() and REDACTED in record.getMessage()


def test_a_served_request_with_a_token_in_its_url_is_logged_without_it(tmp_path: Path) -> None:
    secret = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXZhbHVl.c2lnbmF0dXJl"
    server = start_server(tmp_path)
    try:
        response = httpx.get(
            server.graphql_url,
            params={"query": "{ __typename }", "token": secret, "access_token": secret},
            timeout=10,
        )
        assert response.status_code == 200
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "GET /graphql?query=" in log, log
    assert secret not in log
    assert f"token={REDACTED}" in log.replace("%5B", "[").replace("%5D", "]")
