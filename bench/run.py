"""``make bench``: each performance figure beside a reference measured in the same run.

    python -m bench.run [--only Q1,F1] [--smoke] [--backends sqlite,postgres] [--output FILE]

Figures: Q1, Q1-db (queries, SQLite and PostgreSQL), F1 (fan-out), L1
(commit -> client latency), X1 (across instances), W1 (writes/s and relay
lag), M1 (memory per idle subscription), H1 (isolation from a hot user).
L1, X1, W1 and the PostgreSQL queries need PostgreSQL and Redis
(``BENCH_POSTGRES_URL``, ``BENCH_REDIS_URL``); without them those figures are
listed as not measured. ``--smoke`` shrinks every size so that the run takes
seconds; its numbers mean nothing. Prints a Markdown table and writes
``bench/results.json``. The exit status is 0 whether or not targets are met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .context import FULL, SMOKE, Context, probe_services
from .crowd import run_crowd
from .fanout import run_f1, run_latency
from .queries import run_queries
from .report import Figure, document, table

__all__ = ["FIGURES", "main", "run"]

FIGURES = ("Q1", "Q1-db", "F1", "L1", "X1", "W1", "M1", "H1")
RESULTS = Path(__file__).with_name("results.json")
NEEDS_SERVICES = {"L1", "X1", "W1"}
START = "<!-- bench results: start -->"
END = "<!-- bench results: end -->"


def _skipped(name: str, why: str) -> Figure:
    return Figure(name, "not measured", "", None, None, None, "-", None, note=why)


def _progress(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {text}", file=sys.stderr, flush=True)


async def _group(
    started: float, label: str, wanted: Sequence[str], measure: Awaitable[list[Figure]]
) -> list[Figure]:
    """One group of figures; a failure becomes its figures' note, and the run goes on."""
    _progress(started, f"{label} ...")
    try:
        figures = await measure
    except Exception as exc:
        traceback.print_exc()
        figures = [_skipped(name, f"failed: {exc!r}"[:300]) for name in wanted]
    _progress(started, f"{label} done")
    return figures


async def _one(figure: Awaitable[Figure]) -> list[Figure]:
    return [await figure]


async def run(ctx: Context, names: set[str], backends: list[str]) -> list[Figure]:
    """Measure the figures in ``names``, in a fixed order."""
    started = time.monotonic()
    figures: list[Figure] = []
    missing = "PostgreSQL or Redis is not reachable"
    queries = [n for n in ("Q1", "Q1-db") if n in names]
    for backend in backends if queries else []:
        if backend == "postgres" and not ctx.postgres:
            figures += [_skipped(n, missing) for n in queries]
            continue
        label = f"{','.join(queries)} {backend}"
        figures += await _group(started, label, queries, run_queries(ctx, backend, names))
    if "F1" in names:
        figures += await _group(started, "F1", ["F1"], _one(run_f1(ctx)))
    latency = [n for n in FIGURES if n in names & NEEDS_SERVICES]
    if latency and ctx.postgres and ctx.redis:
        figures += await _group(started, ",".join(latency), latency, run_latency(ctx, names))
    else:
        figures += [_skipped(n, missing) for n in latency]
    crowd = [n for n in ("M1", "H1") if n in names]
    if crowd:
        figures += await _group(started, ",".join(crowd), crowd, run_crowd(ctx, names))
    return figures


def _generator_lines(figures: list[Figure]) -> list[str]:
    """How busy the load generators were: near 100 % of a core they would be the limit."""
    http = [
        d.get("cpu_fraction", 0.0)
        for f in figures
        if f.name.startswith("Q1")
        for d in (f.details.get("serve", {}), f.details.get("reference", {}))
    ] + [f.details["generator_cpu_fraction"] for f in figures if f.name == "W1"]
    ws = [
        f.details[side]["client_cpu_fraction"]
        for f in figures
        if f.name == "F1"
        for side in ("serve", "reference")
    ]
    lines = []
    if http:
        lines.append(
            f"- HTTP load generator: at most {max(http) * 100:.0f} % of a core in any run."
        )
    if ws:
        lines.append(
            f"- WebSocket clients (F1): at most {max(ws) * 100:.0f} % of a core while receiving."
        )
    return lines


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help=f"comma-separated, of {','.join(FIGURES)}")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument("--backends", default="sqlite,postgres", help="for Q1 and Q1-db")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--readme", type=Path, help="also put the table in this file, between the bench markers"
    )
    args = parser.parse_args(argv)
    names = {n.strip() for n in args.only.split(",") if n.strip()} or set(FIGURES)
    unknown = names - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; choose from {', '.join(FIGURES)}")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = datetime.now(UTC)
    load = os.getloadavg()
    postgres, redis = asyncio.run(probe_services())
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ctx = Context(
            sizes=SMOKE if args.smoke else FULL,
            directory=Path(tmp),
            postgres=postgres,
            redis=redis,
            run_id=f"{os.getpid()}_{int(time.time())}",
        )
        figures = asyncio.run(run(ctx, args.names, args.backends.split(",")))
    result = document(
        figures,
        sizes=ctx.sizes.name,
        started=started,
        extra={
            "load_average_at_start": [round(x, 2) for x in load],
            "load_generator": ctx.ceiling,
        },
    )
    lines = [*table(figures), ""]
    if ctx.ceiling is not None:
        lines.append(
            f"- Load generator ceiling: {ctx.ceiling['rps']:,.0f} req/s against a constant route "
            f"({ctx.ceiling['cpu_fraction'] * 100:.0f} % of a core)."
        )
    lines += _generator_lines(figures)
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    lines += list(dict.fromkeys(notes))
    print("\n".join(lines))
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.output} ({result['seconds']:g} s, sizes {ctx.sizes.name})")
    if args.readme is not None and args.smoke:
        print("smoke sizes: the README keeps its table", file=sys.stderr)
    elif args.readme is not None:
        update_readme(args.readme, result, lines)
    return 0


def update_readme(path: Path, result: dict[str, Any], lines: list[str]) -> None:
    """Replace the text between ``START`` and ``END`` in ``path`` with this run's table.

    Raises:
        SystemExit: the markers are missing.
    """
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END}")
    m = result["machine"]
    load = result["load_average_at_start"][0]
    shared = (
        f"shared with other work (load average {load:g} on {m['cpus']} cores at the start)"
        if load > m["cpus"] / 2
        else f"otherwise idle (load average {load:g} at the start)"
    )
    block = [
        START,
        f"Latest full run: {result['date']}, {result['seconds']:g} s, on {m['cpus']} cores "
        f"({m['cpu_model'] or 'unknown CPU'}), Python {m['python']}, {shared}. "
        "On a shared machine absolute numbers are depressed; the same-run ratios less so.",
        "",
        *lines,
        END,
    ]
    head, rest = text.split(START, 1)
    path.write_text(head + "\n".join(block) + rest.split(END, 1)[1])


if __name__ == "__main__":
    sys.exit(main())
