"""The README's JavaScript and curl examples, run as written against a real server.

Each example is a fenced block after an ``<!-- example: NAME -->`` line. Every
``js`` block, and every ``sh`` block that runs ``curl``, must carry one, and
every name has a test here. The only change made to an example before it
runs is its address: ``127.0.0.1:8000`` becomes the test server's port.
JavaScript runs under node with the packages of ``tests/e2e/package.json``.
The ``graphql`` blocks are checked against the schema; a fragment with Relay's
compiler directives is checked as the query its ``@refetchable`` makes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    ObjectValueNode,
    StringValueNode,
    extend_schema,
    parse,
    print_ast,
    validate,
)

from gql.schema import create_schema
from tests.servers import LOG_TAIL_CHARS, start_server

from .conftest import NODE_MODULES, Server, run_node

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
ADDRESS = "127.0.0.1:8000"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- example: ([a-z0-9-]+) -->\n$")
SCRIPT_TIMEOUT = 30.0
TESTED = {
    "quickstart",
    "parse-error",
    "subscribe",
    "apollo",
    "urql",
    "relay",
    "dashboard",
    "resume",
    "apq",
    "escalation",
    "walkthrough",
}
CHECK_IN = (
    'mutation { recordCheckIn(input: {userId: "u1", intervalSeconds: 3600}) '
    "{ status { version } } }"
)


@dataclass(frozen=True)
class Example:
    name: str
    language: str
    text: str

    def against(self, server: Server) -> str:
        """The example's text, pointed at ``server`` instead of the README's address."""
        assert ADDRESS in self.text, f"example {self.name} does not use {ADDRESS}"
        return self.text.replace(ADDRESS, f"127.0.0.1:{server.port}")


def fenced_blocks(text: str) -> Iterator[tuple[str | None, str, str]]:
    """(marker name or None, language, code) of each top-level fenced block."""
    for match in FENCE.finditer(text):
        marker = MARKER.search(text, 0, match.start())
        named = marker.group(1) if marker is not None and marker.end() == match.start() else None
        yield named, match.group(1), match.group(2)


def examples() -> dict[str, Example]:
    found: dict[str, Example] = {}
    for name, language, code in fenced_blocks(README.read_text(encoding="utf-8")):
        if name is not None:
            assert name not in found, f"two examples named {name}"
            found[name] = Example(name, language, code)
    return found


def test_every_js_and_curl_example_is_marked_and_tested() -> None:
    unmarked = [
        code.splitlines()[0]
        for name, language, code in fenced_blocks(README.read_text(encoding="utf-8"))
        if name is None and (language == "js" or (language == "sh" and "curl " in code))
    ]
    assert not unmarked, f"README examples without <!-- example: NAME -->: {unmarked}"
    assert set(examples()) == TESTED


def test_the_extraction_sees_markers_only_right_before_a_block() -> None:
    text = (
        "<!-- example: a -->\n```sh\ncurl x\n```\n\n"
        "<!-- example: b -->\n\nprose\n```js\nlet y\n```\n"
        "```sh\necho\n```\n"
    )
    assert list(fenced_blocks(text)) == [
        ("a", "sh", "curl x\n"),
        (None, "js", "let y\n"),
        (None, "sh", "echo\n"),
    ]


# Relay's compiler directives, as relay-compiler declares them (relay-schema's
# relay-extensions.graphql). The compiler removes them before a document reaches
# the server; @argumentDefinitions and @arguments take any argument names.
RELAY_DIRECTIVES = """
directive @argumentDefinitions on FRAGMENT_DEFINITION
directive @arguments on FRAGMENT_SPREAD
directive @refetchable(queryName: String!) on FRAGMENT_DEFINITION
directive @connection(key: String!, filters: [String], handler: String) on FIELD
"""
FREE_ARGUMENTS = {"argumentDefinitions", "arguments"}


def relay_operation(document: DocumentNode) -> str:
    """A fragment with ``@argumentDefinitions`` as the query its ``@refetchable`` makes.

    Each argument definition becomes a variable of that query, with its type and
    default value, so the checks a server makes (argument and variable types,
    known fields) apply to the fragment; ``@argumentDefinitions`` and
    ``@arguments`` themselves are left out, as the compiler leaves them out.
    """
    (fragment,) = document.definitions
    assert isinstance(fragment, FragmentDefinitionNode), print_ast(document)
    assert fragment.type_condition.name.value == "Query", "a @refetchable fragment on Query"
    directives = {directive.name.value: directive for directive in fragment.directives}
    variables = []
    for argument in directives["argumentDefinitions"].arguments:
        assert isinstance(argument.value, ObjectValueNode), print_ast(argument)
        fields = {field.name.value: field.value for field in argument.value.fields}
        assert isinstance(fields["type"], StringValueNode), print_ast(argument)
        default = f" = {print_ast(fields['defaultValue'])}" if "defaultValue" in fields else ""
        variables.append(f"${argument.name.value}: {fields['type'].value}{default}")
    (query_name,) = directives["refetchable"].arguments
    assert isinstance(query_name.value, StringValueNode), print_ast(query_name)
    kept = tuple(d for d in fragment.directives if d.name.value not in FREE_ARGUMENTS)
    return (
        f"query {query_name.value.value}({', '.join(variables)}) {{ ...{fragment.name.value} }}\n"
        f"{print_ast(dataclasses.replace(fragment, directives=kept))}"
    )


def graphql_errors(schema: GraphQLSchema, code: str) -> list[str]:
    document = parse(code)
    if "@argumentDefinitions" in code:
        schema = extend_schema(schema, parse(RELAY_DIRECTIVES))
        document = parse(relay_operation(document))
    return [error.message for error in validate(schema, document)]


def test_every_graphql_example_is_valid_against_the_schema() -> None:
    schema = create_schema()._schema
    documents = [
        code
        for _, language, code in fenced_blocks(README.read_text(encoding="utf-8"))
        if language == "graphql"
    ]
    assert len(documents) >= 3
    assert any("@connection" in document for document in documents)
    for document in documents:
        assert graphql_errors(schema, document) == [], document


RELAY_FRAGMENT = """
fragment List_query on Query
  @argumentDefinitions(
    userId: {type: "String!"}, first: {type: "Int", defaultValue: 20}, after: {type: "String"}
  )
  @refetchable(queryName: "ListPaginationQuery") {
  recentActivities(userId: $userId, first: $first, after: $after)
    @connection(key: "List_recentActivities", filters: ["userId"]) {
    edges { node { id type } }
  }
}
"""


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("", "", None),
        ("{ id type }", "{ id kind }", "Cannot query field 'kind'"),
        ('"String!"', '"Int!"', "Variable '$userId' of type 'Int!' used in position"),
        ('"Int"', '"String"', "Variable '$first' of type 'String' used in position"),
        ("defaultValue: 20", 'defaultValue: "20"', "Int cannot represent non-integer value"),
        ('key: "List_recentActivities", ', "", "Argument '@connection(key:)'"),
        ("@connection", "@connections", "Unknown directive '@connections'"),
        ('queryName: "', 'query: "', "Unknown argument 'query' on directive '@refetchable'"),
        ("recentActivities(userId", "recentActivities(user", "Unknown argument 'user'"),
    ],
)
def test_the_relay_fragment_check_finds_schema_mistakes(
    old: str, new: str, error: str | None
) -> None:
    code = RELAY_FRAGMENT.replace(old, new, 1)
    assert code != RELAY_FRAGMENT or not old
    errors = graphql_errors(create_schema()._schema, code)
    if error is None:
        assert errors == []
    else:
        assert any(message.startswith(error) for message in errors), errors


def run_shell(example: Example, server: Server) -> list[dict[str, Any]]:
    """Run a shell example with bash; the JSON bodies its commands printed, in order."""
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", example.against(server)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    bodies = []
    decoder = json.JSONDecoder()
    text = done.stdout.strip()
    while text:
        body, end = decoder.raw_decode(text)
        bodies.append(body)
        text = text[end:].strip()
    return bodies


def test_quickstart(server: Server) -> None:
    checked_in, read = run_shell(examples()["quickstart"], server)
    assert "errors" not in checked_in, checked_in
    status = checked_in["data"]["recordCheckIn"]["status"]
    assert status["alertLevel"] == "NONE"
    assert status["nextDue"].endswith("Z")
    assert read == {"data": {"userStatus": {"alertLevel": "NONE"}}}


def test_a_parse_error_by_curl(server: Server) -> None:
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", examples()["parse-error"].against(server)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    # (text mode reads the CRLF line ends as "\n")
    head, _, body = done.stdout.partition("\n\n")
    status_line, *headers = head.splitlines()
    assert status_line == "HTTP/1.1 400 Bad Request", done.stdout
    assert "content-type: application/graphql-response+json; charset=utf-8" in headers, headers
    (error,) = json.loads(body)["errors"]
    assert error["message"] == "Syntax Error: Expected Name, found <EOF>."
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


def test_automatic_persisted_queries(server: Server) -> None:
    response = httpx.post(server.graphql_url, json={"query": CHECK_IN}, timeout=10)
    assert response.json() == {"data": {"recordCheckIn": {"status": {"version": 1}}}}
    missed, registered, by_hash = run_shell(examples()["apq"], server)
    assert [error["extensions"]["code"] for error in missed["errors"]] == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]
    assert "errors" not in registered, registered
    assert registered["data"]["userStatus"]["alertLevel"] == "NONE"
    assert by_hash == registered


# "Missed check-ins" and "Watch a missed check-in escalate" check in the same way.
@pytest.mark.parametrize("name", ["escalation", "walkthrough"])
def test_escalation(tmp_path: Path, name: str) -> None:
    # The README serves these examples with ESCALATION_POLICY=WARNING:0,ALERT:20.
    server = start_server(tmp_path, settings={"ESCALATION_POLICY": "WARNING:0,ALERT:20"})
    try:
        (checked_in,) = run_shell(examples()[name], server)
        assert "errors" not in checked_in, checked_in
        assert checked_in["data"]["recordCheckIn"]["status"]["nextDue"]
        # "Ten seconds after the check-in the level turns WARNING."
        level = None
        with httpx.Client(timeout=5) as http:
            for _ in range(300):
                response = http.post(
                    server.graphql_url,
                    json={"query": '{ userStatus(userId: "u1") { alertLevel } }'},
                )
                level = response.json()["data"]["userStatus"]["alertLevel"]
                if level != "NONE":
                    break
                # Waiting for the server's own clock: nothing to await but time.
                time.sleep(0.1)
        assert level == "WARNING"
    finally:
        server.stop()


def node_script(example: Example, server: Server, directory: Path) -> Path:
    """The example as an ES module in ``directory``, finding the e2e node_modules."""
    link = directory / "node_modules"
    if not link.exists():
        link.symlink_to(NODE_MODULES, target_is_directory=True)
    path = directory / f"{example.name}.mjs"
    path.write_text(example.against(server), encoding="utf-8")
    return path


async def start_node(node: str, script: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        node,
        str(script),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=script.parent,
    )


async def stop_node(process: asyncio.subprocess.Process) -> str:
    """Kill the example (it runs until stopped); what it wrote on stderr."""
    if process.returncode is None:
        process.kill()
    assert process.stderr is not None
    _, stderr = await process.communicate()
    return stderr.decode(errors="replace")[-LOG_TAIL_CHARS:]


async def read_until(
    process: asyncio.subprocess.Process, done: Any, seen: list[str], timeout: float
) -> None:
    """Read stdout lines into ``seen`` until ``done(seen)``."""
    assert process.stdout is not None
    async with asyncio.timeout(timeout):
        while not done(seen):
            line = await process.stdout.readline()
            if not line:
                raise AssertionError(f"the example exited ({process.returncode}): {seen}")
            seen.append(line.decode())


async def test_subscribe_needs_no_token_in_dev_mode(
    node: str, server: Server, tmp_path: Path
) -> None:
    await server.execute(CHECK_IN)
    process = await start_node(node, node_script(examples()["subscribe"], server, tmp_path))
    seen: list[str] = []
    try:
        # First the status it has, then the change of the next check-in.
        await read_until(process, lambda lines: "version: 1" in "".join(lines), seen, 15)
        await server.execute(CHECK_IN)
        await read_until(process, lambda lines: "version: 2" in "".join(lines), seen, 15)
    finally:
        stderr = await stop_node(process)
    assert "Error" not in stderr, stderr
    output = "".join(seen)
    assert output.startswith("status {"), output
    assert "alertLevel: 'NONE'" in output


ADD = """mutation($n: Int!, $d: String!, $t: DateTime) {
  addActivity(
    input: {userId: "u1", type: "note", description: $d, metadata: {n: $n}, timestamp: $t}
  ) { seq }
}"""


async def add(server: Server, n: int, *, timestamp: str | None = None) -> int:
    data = await server.execute(ADD, {"n": n, "d": f"note {n}", "t": timestamp})
    seq: int = data["addActivity"]["seq"]
    return seq


async def test_resume_survives_a_server_restart_with_no_gap(node: str, tmp_path: Path) -> None:
    first = await asyncio.to_thread(start_server, tmp_path, name="before")
    servers = [first]
    process = None
    seen: list[str] = []

    def seqs(lines: list[str]) -> list[int]:
        return [json.loads(line)["seq"] for line in lines]

    try:
        written = [await add(first, n) for n in range(2)]  # shown from the feed's first page
        # Back-dated: the newest seq, the oldest timestamp, so the page lists it
        # last (newest first by timestamp) and shows it first; none is hidden.
        written.insert(0, await add(first, 2, timestamp="2020-01-01T00:00:00Z"))
        script = node_script(examples()["resume"], first, tmp_path)
        process = await start_node(node, script)
        await read_until(process, lambda lines: len(lines) >= len(written), seen, SCRIPT_TIMEOUT)
        assert seqs(seen) == written == [3, 1, 2], seen
        written += [await add(first, n) for n in range(3, 5)]  # live
        await read_until(process, lambda lines: len(lines) == len(written), seen, SCRIPT_TIMEOUT)

        await asyncio.to_thread(first.stop)
        # Written while the client cannot connect (the same database, served on
        # another port): it gets them only by resuming with `after`.
        elsewhere = await asyncio.to_thread(start_server, tmp_path, name="elsewhere")
        servers.append(elsewhere)
        written += [await add(elsewhere, n) for n in range(5, 8)]
        await asyncio.to_thread(elsewhere.stop)
        second = await asyncio.to_thread(
            start_server, tmp_path, name="after", port=first.port, attempts=1
        )
        servers.append(second)
        await read_until(process, lambda lines: len(lines) >= len(written), seen, SCRIPT_TIMEOUT)
        written += [await add(second, 8)]  # and live again after the replay
        await read_until(process, lambda lines: len(lines) >= len(written), seen, SCRIPT_TIMEOUT)
    finally:
        stderr = await stop_node(process) if process is not None else ""
        for running in servers:
            await asyncio.to_thread(running.stop)
    assert seqs(seen) == written, (seen, stderr)
    assert written == [3, 1, 2, *range(4, 10)]
    assert [json.loads(line)["description"] for line in seen] == [
        f"note {seq - 1}" for seq in written
    ]


async def run_to_exit(node: str, script: Path, *args: str) -> tuple[int, str, str]:
    """Run a node program that ends by itself: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        node,
        str(script),
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=script.parent,
    )
    try:
        async with asyncio.timeout(SCRIPT_TIMEOUT):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode(errors="replace")[-LOG_TAIL_CHARS:]


STATUS_NOW = '{ userStatus(userId: "u1") { userId alertLevel nextDue version } }'


def printed(output: str, label: str) -> list[dict[str, Any]]:
    """The JSON printed after ``label`` on each line that starts with it."""
    found = []
    for line in output.splitlines():
        if line.startswith(f"{label} "):
            try:
                found.append(json.loads(line.removeprefix(f"{label} ")))
            except ValueError:
                pytest.fail(f"not JSON after {label!r}: {line!r}\n{output}")
    return found


@pytest.mark.parametrize("name", ["apollo", "urql"])
async def test_a_client_checks_in_and_sees_the_change_on_its_subscription(
    node: str, server: Server, tmp_path: Path, name: str
) -> None:
    code, stdout, stderr = await run_to_exit(node, node_script(examples()[name], server, tmp_path))
    assert code == 0, f"exit {code}\n{stdout}\n{stderr}"
    assert stderr == "", stderr
    # Its first check-in's status (version 1) on subscribing, then its second's.
    statuses = printed(stdout, "status")
    assert [status["version"] for status in statuses] == [1, 2], stdout
    now = (await server.execute(STATUS_NOW))["userStatus"]
    # (Apollo adds __typename to what it asks over the socket; urql does not.)
    assert {k: v for k, v in statuses[-1].items() if k != "__typename"} == now, stdout
    if name == "apollo":
        # The normalised cache entry, keyed by userId, holds the subscription's change.
        assert printed(stdout, "cached") == [statuses[-1]], stdout


async def test_the_relay_environment_queries_and_subscribes(
    node: str, server: Server, tmp_path: Path
) -> None:
    await server.execute(CHECK_IN)
    module = node_script(examples()["relay"], server, tmp_path)
    async with run_node(
        node, "readme_relay.mjs", str(module), "u1", str(SCRIPT_TIMEOUT), log_dir=tmp_path
    ) as client:
        steps: dict[str, Any] = {}
        while (message := await client.message(SCRIPT_TIMEOUT + 2)) is not None:
            steps[message["op"]] = message["data"]
            if message["op"] == "snapshot":
                await server.execute(CHECK_IN)  # seen only through the subscription
        code = await client.wait(5.0)
    assert code == 0, client.describe()
    first = {"userId": "u1", "alertLevel": "NONE", "version": 1}
    assert steps == {"query": first, "snapshot": first, "change": {**first, "version": 2}}


CHECK_IN_SEQS = """mutation {
  recordCheckIn(input: {userId: "u1", intervalSeconds: 3600}) { activity { seq } status { seq } }
}"""


async def check_in_seqs(server: Server) -> tuple[int, int]:
    """Check u1 in: the seqs of its check_in activity and of its new status."""
    done = (await server.execute(CHECK_IN_SEQS))["recordCheckIn"]
    return done["activity"]["seq"], done["status"]["seq"]


def dashboard_views(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


async def assert_view_is_the_database(
    server: Server, view: dict[str, Any], activities: list[int]
) -> None:
    """``view`` is what the database holds now: the status and the newest 20 activities."""
    now = await server.execute(
        '{ recentActivities(userId: "u1", first: 20) { edges { node { id seq type description } } }'
        ' userStatus(userId: "u1") { alertLevel nextDue lastCheckIn } }'
    )
    assert view["status"] == now["userStatus"]
    assert view["status"]["alertLevel"] == "NONE"
    newest = [edge["node"] for edge in now["recentActivities"]["edges"]]
    assert [
        {key: activity[key] for key in ("id", "seq", "type", "description")}
        for activity in view["activities"]
    ] == newest
    assert [activity["seq"] for activity in view["activities"]] == sorted(activities)[:-21:-1]


async def test_the_dashboard_view_follows_every_change(
    node: str, server: Server, tmp_path: Path
) -> None:
    process = await start_node(node, node_script(examples()["dashboard"], server, tmp_path))
    seen: list[str] = []
    try:
        # The snapshot of a user with nothing yet, then one view per change.
        await read_until(process, lambda lines: len(lines) == 1, seen, 15)
        assert dashboard_views(seen) == [{"seq": 0, "status": None, "activities": []}]
        activities = [await add(server, n) for n in range(3)]
        activity, status = await check_in_seqs(server)
        activities.append(activity)
        activities += [await add(server, n) for n in range(3, 25)]
        last = max(*activities, status)
        await read_until(process, lambda lines: dashboard_views(lines)[-1]["seq"] == last, seen, 15)
    finally:
        stderr = await stop_node(process)
    assert "Error" not in stderr, stderr
    views = dashboard_views(seen)
    assert [view["seq"] for view in views] == list(range(last + 1)), seen
    await assert_view_is_the_database(server, views[-1], activities)


async def test_the_dashboard_resumes_after_a_server_restart(node: str, tmp_path: Path) -> None:
    first = await asyncio.to_thread(start_server, tmp_path, name="before")
    servers = [first]
    process = None
    seen: list[str] = []
    try:
        activity, status = await check_in_seqs(first)
        activities = [activity, *[await add(first, n) for n in range(3)]]
        process = await start_node(node, node_script(examples()["dashboard"], first, tmp_path))
        await read_until(process, lambda lines: len(lines) == 1, seen, SCRIPT_TIMEOUT)
        assert dashboard_views(seen)[0]["seq"] == max(*activities, status)  # the snapshot
        activities.append(await add(first, 3))
        await read_until(process, lambda lines: len(lines) == 2, seen, SCRIPT_TIMEOUT)

        await asyncio.to_thread(first.stop)
        # Written while the client cannot connect (the same database, served on
        # another port): the view gets them only by resuming with `after`.
        elsewhere = await asyncio.to_thread(start_server, tmp_path, name="elsewhere")
        servers.append(elsewhere)
        activities += [await add(elsewhere, n) for n in range(4, 7)]
        activity, status = await check_in_seqs(elsewhere)
        activities.append(activity)
        await asyncio.to_thread(elsewhere.stop)
        second = await asyncio.to_thread(
            start_server, tmp_path, name="after", port=first.port, attempts=1
        )
        servers.append(second)
        activities.append(await add(second, 7))  # live again after the replay
        last = max(*activities, status)
        await read_until(
            process, lambda lines: dashboard_views(lines)[-1]["seq"] == last, seen, SCRIPT_TIMEOUT
        )
        views = dashboard_views(seen)
        await assert_view_is_the_database(second, views[-1], activities)
    finally:
        stderr = await stop_node(process) if process is not None else ""
        for running in servers:
            await asyncio.to_thread(running.stop)
    # One view per change after the snapshot: none lost, none twice, none out of order.
    seqs = [view["seq"] for view in views]
    assert seqs == list(range(seqs[0], last + 1)), (seen, stderr)
