"""GraphiQL opens on an example of this API, which runs as its comment says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from graphql import OperationDefinitionNode, OperationType, parse, validate

from gql import Settings
from gql.graphiql import DEFAULT_DOCUMENT
from gql.schema import create_schema

from .conftest import websocket
from .helpers import TRANSPORT_WS, Protocol


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db",
        escalation_policy="",  # type: ignore[arg-type]
    )


async def test_the_page_opens_on_the_default_document(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    match = re.search(r"const EXAMPLE_QUERY = (.*?);\n", page.text)
    assert match is not None, "the page no longer sets EXAMPLE_QUERY"
    assert json.loads(match.group(1)) == DEFAULT_DOCUMENT
    assert "Welcome to GraphiQL" not in page.text


def operations() -> dict[str, OperationDefinitionNode]:
    return {
        node.name.value: node
        for node in parse(DEFAULT_DOCUMENT).definitions
        if isinstance(node, OperationDefinitionNode) and node.name is not None
    }


def test_the_document_is_valid_and_has_one_operation_of_each_kind(settings: Settings) -> None:
    schema = create_schema(settings)._schema
    assert validate(schema, parse(DEFAULT_DOCUMENT)) == []
    kinds = {node.operation for node in operations().values()}
    assert kinds == {OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION}
    # The comment names the order, with the operations' own names.
    comment = DEFAULT_DOCUMENT[: DEFAULT_DOCUMENT.index("\nmutation")]
    assert all(line.startswith("#") or not line for line in comment.splitlines())
    order = [comment.index(f"{number}. {name}") for number, name in enumerate(operations(), 1)]
    assert order == sorted(order)


async def test_the_operations_run_in_the_order_the_comment_gives(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    checked_in = await client.post(
        "/graphql", json={"query": DEFAULT_DOCUMENT, "operationName": "CheckIn"}
    )
    body = checked_in.json()
    assert "errors" not in body, body
    status = body["data"]["recordCheckIn"]["status"]
    assert status["alertLevel"] == "NONE"

    read = (
        await client.post("/graphql", json={"query": DEFAULT_DOCUMENT, "operationName": "Status"})
    ).json()
    assert "errors" not in read, read
    assert read["data"]["userStatus"] == status
    assert [edge["node"]["type"] for edge in read["data"]["recentActivities"]["edges"]] == [
        "check_in"
    ]

    async with websocket(app, TRANSPORT_WS) as ws:
        proto = Protocol(ws, TRANSPORT_WS)
        await proto.init()
        await ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": DEFAULT_DOCUMENT, "operationName": "WatchStatus"},
            }
        )
        snapshot = (await proto.next_data("1"))["userStatusChanged"]
        assert snapshot["version"] == status["version"]
        await client.post("/graphql", json={"query": DEFAULT_DOCUMENT, "operationName": "CheckIn"})
        change = (await proto.next_data("1"))["userStatusChanged"]
        assert change["version"] == status["version"] + 1
