"""Q1 quickly: req/s of recentActivities beside a raw Starlette route, in one run.

``python -m bench.q1_quick [--db sqlite|postgres] [--store on|off] [--seconds N]``
starts one ``serve`` worker and one raw Starlette worker on the same database,
checks that both answer the same bytes, then loads each with ``wrk`` (20
connections), alternating, and prints req/s and the ratio. ``--profile`` runs
the load against ``serve`` only, for a profiler attached from outside.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from bench.server import _free_port, start_serve

QUERY = (
    "query Q1($u: String!) { recentActivities(userId: $u, first: 20) "
    "{ edges { node { id type description timestamp } } } }"
)
STATUS = (
    "query S($u: String!) { userStatus(userId: $u) "
    "{ userId lastCheckIn nextDue alertLevel version seq updatedAt } }"
)
USER = "bench-q1"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/"

RAW_APP = textwrap.dedent(
    """
    import json, os
    from datetime import UTC
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    engine = create_async_engine(os.environ["DATABASE_URL"])
    SQL = text(
        "SELECT id, type, description, timestamp FROM activities WHERE user_id = :u "
        "ORDER BY timestamp DESC, id DESC LIMIT 21"
    )

    def stamp(value):
        if isinstance(value, str):
            from datetime import datetime
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    async def q1(request):
        body = json.loads(await request.body())
        async with engine.connect() as conn:
            rows = (await conn.execute(SQL, {"u": body["variables"]["u"]})).all()
        edges = [
            {"node": {"id": str(r[0]), "type": r[1], "description": r[2], "timestamp": stamp(r[3])}}
            for r in rows[:20]
        ]
        data = {"data": {"recentActivities": {"edges": edges}}}
        return Response(json.dumps(data, separators=(",", ":")), media_type="application/json")

    app = Starlette(routes=[Route("/graphql", q1, methods=["POST"])])
    """
)

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, body: str, seconds: int, directory: Path) -> float:
    script = directory / "q1.lua"
    script.write_text(LUA % body)
    out = subprocess.run(
        ["wrk", "-t1", "-c20", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--store", choices=["on", "off"], default="on")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", type=float, default=0.0, help="seconds of load on serve")
    parser.add_argument("--status", action="store_true", help="profile userStatus instead")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="q1-"))
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc"]
    name = f"q1_{os.getpid()}"
    settings = {"REALTIME_URL": "memory://" if args.store == "on" else ""}
    if args.db == "postgres":
        subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True)
        settings["DATABASE_URL"] = PG_URL + name
        settings["BROADCAST_URL"] = "memory://"
        subprocess.run(
            [sys.executable, "-m", "gql.cli", "migrate"],
            env={**os.environ, **settings},
            cwd=directory,
            check=True,
            capture_output=True,
        )
    serve = start_serve(directory, settings)
    database_url = settings.get("DATABASE_URL", f"sqlite+aiosqlite:///{directory / 'checkin.db'}")
    raw_port = _free_port()
    (directory / "raw_app.py").write_text(RAW_APP)
    raw = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "raw_app:app",
            "--port",
            str(raw_port),
            "--log-level",
            "warning",
        ],
        cwd=directory,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    try:
        body = json.dumps({"query": STATUS if args.status else QUERY, "variables": {"u": USER}})
        with httpx.Client(timeout=10) as http:
            for i in range(30):
                add = (
                    f'mutation {{ addActivity(input: {{userId: "{USER}", type: "note", '
                    f'description: "activity {i} of the bench"}}) {{ seq }} }}'
                )
                r = http.post(serve.graphql_url, json={"query": add})
                assert "errors" not in r.json(), r.text
            check_in = (
                f'mutation {{ recordCheckIn(input: {{userId: "{USER}", intervalSeconds: 3600}}) '
                "{ status { seq } } }"
            )
            assert "errors" not in http.post(serve.graphql_url, json={"query": check_in}).json()
            time.sleep(0.5)
            ours = http.post(
                serve.graphql_url, content=body, headers={"content-type": "application/json"}
            )
            for _ in range(50):
                try:
                    theirs = http.post(f"http://127.0.0.1:{raw_port}/graphql", content=body)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert args.status or ours.content == theirs.content, (
                ours.content[:300],
                theirs.content[:300],
            )
        if args.profile:
            print("serve pid", serve.process.pid, flush=True)
            _wrk(serve.graphql_url, body, int(args.profile), directory)
            return
        ours_rps: list[float] = []
        raw_rps: list[float] = []
        # CPU time per request of each server process: steadier than req/s when
        # other work shares the cores.
        ours_cpu: list[float] = []
        raw_cpu: list[float] = []
        raw_url = f"http://127.0.0.1:{raw_port}/graphql"
        for _ in range(args.rounds):
            before = _cpu_seconds(raw.pid)
            raw_rps.append(_wrk(raw_url, body, args.seconds, directory))
            raw_cpu.append((_cpu_seconds(raw.pid) - before) / (raw_rps[-1] * args.seconds))
            before = serve.cpu_seconds()
            ours_rps.append(_wrk(serve.graphql_url, body, args.seconds, directory))
            ours_cpu.append((serve.cpu_seconds() - before) / (ours_rps[-1] * args.seconds))
        o, r = max(ours_rps), max(raw_rps)
        oc, rc = min(ours_cpu) * 1000, min(raw_cpu) * 1000
        print(
            f"Q1 db={args.db} store={args.store}: ours {o:.0f} req/s, raw {r:.0f} req/s, "
            f"ratio {o / r:.2f}; CPU per request ours {oc:.2f} ms, raw {rc:.2f} ms, "
            f"ratio {rc / oc:.2f}  (rounds ours {ours_rps} raw {raw_rps})"
        )
    finally:
        serve.stop()
        raw.terminate()
        raw.wait()
        if args.db == "postgres":
            subprocess.run([*psql, f"DROP DATABASE {name} WITH (FORCE)"], check=False)


if __name__ == "__main__":
    main()
