"""``checkin-realtime``: serve, migrate, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import logging
import math
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["main", "websocket_options", "worker_http_protocol"]

MAX_WORKERS = 64
WORKER_START_TIMEOUT = 30


def _serve(args: argparse.Namespace) -> int:
    # Alembic logs its plugins on import and each migration step at INFO: noise on
    # every start (`migrate` still shows them).
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import uvicorn

    from db.migrate import upgrade

    from .app import create_app
    from .http_timeouts import timed_protocol
    from .logs import log_config
    from .settings import get_settings
    from .shutdown import GracefulServer

    settings = get_settings()
    if not settings.auth_enabled and not _is_loopback(args.host):
        print(
            f"refusing to serve on {args.host} in dev mode, where every client is an admin: "
            "set JWT_SECRET (or JWT_JWKS_URL or SERVICE_API_KEYS) to turn on authentication, "
            "or serve on --host 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    if (problem := _port_taken(args.host, args.port)) is not None:
        print(problem, file=sys.stderr)
        return 2
    if not args.no_migrate:
        upgrade(settings.database_url)
    if args.workers > 1:
        return _serve_workers(args, settings)
    _fresh_metrics_dir()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # Tokens put in a URL's query string must not reach the access log.
        log_config=log_config(settings.log_format, args.log_level),
        lifespan="on",
        # Slow clients (slowloris) are dropped: uvicorn itself never times out a request.
        http=timed_protocol(
            header_timeout=settings.request_header_timeout,
            body_timeout=settings.request_body_timeout,
        ),
        **websocket_options(settings),
    )
    # SIGTERM drains (gql/shutdown.py); a client that stalls mid-request cannot
    # hold the exit past SHUTDOWN_TIMEOUT.
    GracefulServer(config, app=app, timeout=settings.shutdown_timeout).run()
    return 0


def _serve_workers(args: argparse.Namespace, settings: Settings) -> int:
    """``serve --workers N``: uvicorn's process manager, metrics shared through files."""
    import uvicorn

    from .logs import log_config
    from .metrics import MULTIPROC_ENV, multiprocess_dir

    own_dir = None
    if multiprocess_dir() is None:
        own_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="checkin-metrics-")
    _fresh_metrics_dir()
    try:
        # Worker processes import the app and the protocol by name and read the settings anew.
        uvicorn.run(
            "gql.app:create_app",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            log_config=log_config(settings.log_format, args.log_level),
            lifespan="on",
            http="gql.cli:worker_http_protocol",
            **websocket_options(settings),
            timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
            # A worker's start (imports, then the lifespan) can take longer than
            # uvicorn's 5 s on a busy machine; it would be killed and restarted in a loop.
            timeout_worker_healthcheck=WORKER_START_TIMEOUT,
        )
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
    return 0


def websocket_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's WebSocket options from the settings (``serve`` and ``serve --workers N``).

    The transport is a good part of an idle socket's memory: the implementation
    and per-message deflate (zlib state for both directions, once negotiated)
    are settings, measured by ``bench/idle_memory.py``.
    """
    return {
        "ws": settings.ws_implementation,
        # uvicorn refuses longer frames itself (close 1009) before buffering them.
        "ws_max_size": settings.max_ws_frame_bytes,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
    }


def worker_http_protocol(*args: Any, **kwargs: Any) -> asyncio.Protocol:
    """The HTTP protocol of a ``serve --workers N`` process; uvicorn imports it by name.

    A class built at run time cannot be sent to a worker process, so each
    worker builds its own, with the same request timeouts, from its settings.
    """
    return _worker_protocol_class()(*args, **kwargs)


@functools.cache
def _worker_protocol_class() -> type[asyncio.Protocol]:
    from .http_timeouts import timed_protocol
    from .settings import get_settings

    settings = get_settings()
    return timed_protocol(
        header_timeout=settings.request_header_timeout,
        body_timeout=settings.request_body_timeout,
    )


def _fresh_metrics_dir() -> None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR`` (creating it) before any process writes to it.

    prometheus-client's multiprocess mode sums the files every process leaves
    there; files of a previous run would count twice.
    """
    from .metrics import multiprocess_dir

    path = multiprocess_dir()
    if path is None:
        return
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink()


def _positive_workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_WORKERS}")
    return value


def _port_taken(host: str, port: int) -> str | None:
    """Why ``serve`` cannot listen on ``host:port`` (something already does), or None."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # As uvicorn binds: a port left in TIME_WAIT by a previous run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            return (
                f"cannot serve on {host}:{port}: {exc.strerror or exc}; "
                f"choose another port: checkin-realtime serve --port {port + 1} "
                f"(or make serve PORT={port + 1})"
            )
    return None


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost`` (dev mode may bind nothing else)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _migrate(args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    from .settings import get_settings

    # Left out of serve's start (gql.logs); here they are the point.
    logging.getLogger("alembic").setLevel(logging.INFO)

    upgrade(get_settings().database_url, args.revision)
    return 0


def _resync(args: argparse.Namespace) -> int:
    import asyncio

    from db import create_engine, create_session_factory
    from sync import create_store
    from sync.resync import resync

    from .settings import get_settings

    settings = get_settings()
    store = create_store(settings.realtime_url, window=settings.store_window)
    if store is None:
        print("REALTIME_URL is empty: there is no store to rebuild", file=sys.stderr)
        return 2
    if settings.realtime_url.startswith("memory:"):
        print(
            "REALTIME_URL is memory://: the store lives inside each server process "
            "and is rebuilt from the database on demand; nothing to do",
            file=sys.stderr,
        )
        return 2

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            async with store:
                return await resync(
                    sessions=create_session_factory(engine),
                    store=store,
                    user_ids=args.user or None,
                )
        finally:
            await engine.dispose()

    count = asyncio.run(run())
    print(f"resynced {count} users")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from rich.console import Console

    from .simulate import Simulator, simulate

    # One INFO line per request would bury the display.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    simulator = Simulator(
        url=args.url,
        users=args.users,
        rate=args.rate,
        token=args.token,
        interval=args.interval,
        miss=args.miss,
        seed=args.seed,
    )
    console = Console(stderr=args.json)
    live = console.is_terminal and not args.json
    try:
        stats = asyncio.run(simulate(simulator, duration=args.duration, console=console, live=live))
    except KeyboardInterrupt:
        stats = simulator.stats
    summary = stats.summary()
    if args.json:
        print(json.dumps(summary))
    return 1 if summary["writes"] and summary["errors"] >= summary["writes"] else 0


def _positive(kind: type[float] | type[int]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
        return value

    return parse


def _export_schema(args: argparse.Namespace) -> int:
    from .schema import schema_sdl

    sdl = schema_sdl()
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkin-realtime",
        description="Real-time GraphQL backend for check-in dashboards. "
        "Settings come from environment variables "
        "(DATABASE_URL, REALTIME_URL, BROADCAST_URL, ...).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate the database to head, then serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-migrate", action="store_true", help="skip the migration step")
    serve.add_argument(
        "--workers",
        type=_positive_workers,
        default=1,
        help="worker processes (default 1); /metrics sums them all (PROMETHEUS_MULTIPROC_DIR)",
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="migrate the database (default: to head)")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(run=_migrate)

    resync = commands.add_parser(
        "resync", help="rebuild the realtime store (REALTIME_URL) from the database"
    )
    resync.add_argument("--user", action="append", metavar="ID", help="only this user (repeatable)")
    resync.set_defaults(run=_resync)

    sim = commands.add_parser(
        "simulate",
        help="drive realistic traffic (check-ins, missed check-ins, notes) and show it live",
    )
    sim.add_argument("--url", default="http://127.0.0.1:8000/graphql")
    sim.add_argument("--users", type=_positive(int), default=50, help="simulated users")
    sim.add_argument("--rate", type=_positive(float), default=5.0, help="writes per second")
    sim.add_argument("--token", help="a service-role token (not needed in dev mode)")
    sim.add_argument("--interval", type=_positive(float), help="seconds between a user's check-ins")
    sim.add_argument("--miss", type=float, default=0.05, help="share of check-ins missed")
    sim.add_argument("--duration", type=_positive(float), help="seconds (default: until Ctrl-C)")
    sim.add_argument("--seed", type=int, help="for a repeatable run")
    sim.add_argument(
        "--json", action="store_true", help="no live display; print a JSON summary at the end"
    )
    sim.set_defaults(run=_simulate)

    export = commands.add_parser("export-schema", help="write the schema SDL")
    export.add_argument("-o", "--output", default="schema.graphql", help="file, or - for stdout")
    export.set_defaults(run=_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    from .logs import configure
    from .settings import describe_errors, get_settings

    try:
        # Read once up front, so that every command refuses bad settings alike.
        settings = get_settings()
        configure(settings.log_format, getattr(args, "log_level", "info"))
        return int(args.run(args))
    except (ValidationError, SettingsError) as exc:
        for line in describe_errors(exc):
            print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
