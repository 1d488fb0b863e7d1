"""The /dashboard page, driven in a real Chromium against the real server.

A check-in sent over HTTP shows in the overview and in the person's live
feed; the missed check-in then escalates by itself (``WARNING:0,ALERT:2``)
and the page shows that too, though one delta on the way is dropped (the
page notices the gap and starts over from a snapshot); the page's socket is
dropped, it resumes the person's ``dashboard`` with ``after`` = its
watermark, and a second check-in arrives as a delta. Both screenshots are
decoded and checked for the colours of the state they must show.
"""

from __future__ import annotations

import asyncio
import signal
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AUDIENCE, ISSUER, SECRET, token
from tests.servers import start_server

from .conftest import Server, run_node
from .test_graphiql import asset_urls

pytestmark = pytest.mark.e2e

TEST_TIMEOUT = 60.0
BROWSER_TIMEOUT = 45.0
STEP_TIMEOUT = 25.0
VIEWPORT = (1280, 800)
# The page's badge colours (gql/static/dashboard/style.css).
ALERT_ORANGE = (0xF9, 0x73, 0x16)
CHECK_IN = """mutation($u: String!, $s: Int!) {
  recordCheckIn(input: {userId: $u, intervalSeconds: $s}) { status { alertLevel nextDue seq } }
}"""
STATUS = '{ userStatus(userId: "u1") { alertLevel seq } }'
SEED = "mutation($input: UpdateUserStatusInput!) { updateUserStatus(input: $input) { version } }"


@pytest.fixture
def escalating_server(tmp_path: Path) -> Iterator[Server]:
    """A dev-mode server whose missed check-ins escalate within seconds."""
    running = start_server(tmp_path, settings={"ESCALATION_POLICY": "WARNING:0,ALERT:2"})
    try:
        yield running
    finally:
        code = running.stop()
    assert code in (0, -signal.SIGTERM), f"server exited with {code}:\n{running.log_tail()}"


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB or RGBA, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    offset, header, chunks = 8, b"", []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + predictor) & 0xFF
        pixels += [(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels)]
        previous = line
    return width, height, pixels


def _colours(path: Path) -> Counter[tuple[int, int, int]]:
    width, height, pixels = png_pixels(path)
    assert (width, height) == VIEWPORT, f"{path}: {width}x{height}"
    return Counter(pixels)


async def _next(browser: Any, event: str) -> dict[str, Any]:
    message = await browser.message(STEP_TIMEOUT)
    assert message is not None, browser.describe()
    assert message.get("event") == event, f"expected {event}, got {message}\n{browser.describe()}"
    result: dict[str, Any] = message
    return result


@pytest.fixture
def secured_server(tmp_path: Path) -> Iterator[Server]:
    """A production server with tokens required and the page turned on."""
    settings = {
        "ENV": "production",
        "DASHBOARD_PAGE": "true",
        "JWT_SECRET": SECRET,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_ISSUER": ISSUER,
        "ESCALATION_POLICY": "",
    }
    running = start_server(tmp_path, settings=settings)
    try:
        yield running
    finally:
        code = running.stop()
    assert code in (0, -signal.SIGTERM), f"server exited with {code}:\n{running.log_tail()}"


async def test_page_is_served_with_a_strict_policy(escalating_server: Server) -> None:
    async with httpx.AsyncClient(timeout=10.0) as http:
        page = await http.get(f"{escalating_server.base_url}/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "<script>" not in page.text  # no inline script: the policy would block it
        local, elsewhere = asset_urls(escalating_server, page.text)
        assert elsewhere == []
        assert len(local) == 2  # the module and the stylesheet
        for url in local:
            asset = await http.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-security-policy"] == policy


async def test_check_in_and_escalation_appear_live_and_resume_after_a_drop(
    node: str, chromium: str, escalating_server: Server, tmp_path: Path
) -> None:
    server = escalating_server
    now = datetime.now(UTC)
    # Others on the list, so that the order is seen to follow urgency: none of
    # them is due within the test.
    for user, level, due in [
        ("e1", "EMERGENCY", None),
        ("w1", "WARNING", now + timedelta(hours=1)),
        ("n1", "NONE", now + timedelta(minutes=10)),
    ]:
        status = {"userId": user, "alertLevel": level, "nextDue": due and due.isoformat()}
        await server.execute(SEED, {"input": status})
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        run_node(
            node,
            "dashboard_page.mjs",
            f"{server.base_url}/dashboard",
            chromium,
            str(tmp_path),
            str(BROWSER_TIMEOUT),
            log_dir=tmp_path,
        ) as browser,
    ):
        await _next(browser, "ready")
        # Due in 2 s: WARNING then, ALERT 2 s later, written by the server itself.
        await server.execute(CHECK_IN, {"u": "u1", "s": 2})
        escalated = await _next(browser, "escalated")
        resumed = await _next(browser, "resumed")
        checked_in = await server.execute(CHECK_IN, {"u": "u1", "s": 3600})
        report = await browser.message(STEP_TIMEOUT)
        code = await browser.wait(10.0)
        stored = await server.execute(STATUS)
    assert report is not None, browser.describe()
    assert code == 0 and report["ok"] is True, report
    assert report["blockedRequests"] == [], report
    assert report["consoleErrors"] == [], report  # CSP violations are console errors
    assert report["pageErrors"] == [], report
    assert report["csp"] is not None and "unsafe-inline" not in report["csp"]

    # The check-in, then the escalation, as the server wrote them.
    first = report["checkedIn"]
    assert set(first["users"]) == {"e1", "w1", "n1", "u1"} and first["personUser"] == "u1"
    assert first["feed"][0]["type"] == "check_in"
    assert escalated["rowLevel"] == "ALERT" and escalated["personLevel"] == "ALERT"
    assert escalated["users"] == ["e1", "u1", "w1", "n1"]  # most urgent first, live
    assert [item["type"] for item in escalated["feed"]] == [
        "alert_triggered",
        "missed_check_in",
        "check_in",
    ]
    seqs = [item["seq"] for item in escalated["feed"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    assert escalated["personSeq"] >= seqs[0]

    # A lost delta: the page noticed the gap at the next one and started over
    # without after (a fresh snapshot), and still shows every change.
    assert report["droppedDelta"] > first["personSeq"]
    assert [v["after"] for v in report["restartedWith"]] == [None, None], report["restartedWith"]

    # Resumed from the watermark: after = the last seq the view applied.
    assert report["firstSubscribe"]["after"] is None
    assert resumed["after"] == resumed["seqBefore"] == escalated["personSeq"]
    assert report["sockets"] == 2

    # The second check-in arrived as deltas after the seam: no gap, no duplicate.
    final = report["final"]
    assert final["rowLevel"] == "NONE" and final["personLevel"] == "NONE"
    assert final["users"] == ["e1", "w1", "n1", "u1"]  # due in 10 min before due in 1 h
    assert final["personSeq"] == checked_in["recordCheckIn"]["status"]["seq"]
    assert final["personSeq"] == stored["userStatus"]["seq"]
    assert stored["userStatus"]["alertLevel"] == "NONE"
    types = [item["type"] for item in final["feed"]]
    assert types == ["check_in", "alert_triggered", "missed_check_in", "check_in"], final
    final_seqs = [item["seq"] for item in final["feed"]]
    assert final_seqs == sorted(set(final_seqs), reverse=True)
    assert final_seqs[0] > escalated["personSeq"]

    # Nothing kept: no storage, no cookie, nothing in the URL.
    assert report["storage"] == {
        "local": 0,
        "session": 0,
        "cookie": "",
        "url": f"{server.base_url}/dashboard",
    }

    # The screenshots show those states: the ALERT badge's orange in the first
    # (u1's row and its view), none of it once the check-in reset the level.
    alert, after = (
        _colours(Path(report["alertScreenshot"])),
        _colours(Path(report["finalScreenshot"])),
    )
    for colours in (alert, after):
        assert len(colours) > 20, "a blank screenshot"
    assert alert[ALERT_ORANGE] > 500, alert.most_common(8)
    assert after[ALERT_ORANGE] == 0, after.most_common(8)


@pytest.mark.parametrize("role", ["admin", "user"])
async def test_a_token_is_asked_for_used_and_kept_nowhere(
    node: str, chromium: str, secured_server: Server, tmp_path: Path, role: str
) -> None:
    admin = token("ops-1", role="admin")
    typed = admin if role == "admin" else token("u1")
    async with httpx.AsyncClient(timeout=10.0) as http:
        seeded = await http.post(
            secured_server.graphql_url,
            json={"query": CHECK_IN, "variables": {"u": "u1", "s": 3600}},
            headers={"Authorization": f"Bearer {admin}"},
        )
    assert seeded.status_code == 200 and "errors" not in seeded.json(), seeded.text
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        run_node(
            node,
            "dashboard_page.mjs",
            f"{secured_server.base_url}/dashboard",
            chromium,
            str(tmp_path),
            str(BROWSER_TIMEOUT),
            typed,
            log_dir=tmp_path,
        ) as browser,
    ):
        report = await browser.message(BROWSER_TIMEOUT + 6)
        code = await browser.wait(10.0)
    assert report is not None, browser.describe()
    assert code == 0 and report["ok"] is True, report
    assert "needs credentials" in report["notice"]
    # Sent once the user typed it, in connection_init only; the first try had none.
    assert report["sentInit"] == [{}, {"authorization": f"Bearer {typed}"}]
    assert report["final"]["personUser"] == "u1"
    assert report["final"]["feed"][0]["type"] == "check_in"
    if role == "admin":
        assert report["final"]["users"] == ["u1"]
    else:  # the list is for admins: refused once, not retried
        assert report["overviewError"].startswith("FORBIDDEN"), report
        assert report["feedSubscribes"] == 1
    assert report["tokenFormHidden"] is True
    assert report["tokenSeen"] == [], report["tokenSeen"]
    assert report["pageErrors"] == [] and report["blockedRequests"] == [], report
