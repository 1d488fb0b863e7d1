"""``checkin-realtime``: serve, migrate, export-schema."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

__all__ = ["main"]


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
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # Tokens put in a URL's query string must not reach the access log.
        log_config=log_config(),
        lifespan="on",
        # Slow clients (slowloris) are dropped: uvicorn itself never times out a request.
        http=timed_protocol(
            header_timeout=settings.request_header_timeout,
            body_timeout=settings.request_body_timeout,
        ),
        # uvicorn refuses longer frames itself (close 1009) before buffering them.
        ws_max_size=settings.max_ws_frame_bytes,
    )
    # SIGTERM drains (gql/shutdown.py); a client that stalls mid-request cannot
    # hold the exit past SHUTDOWN_TIMEOUT.
    GracefulServer(config, app=app, timeout=settings.shutdown_timeout).run()
    return 0


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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = _parser().parse_args(argv)
    from .settings import describe_errors, get_settings

    try:
        # Read once up front, so that every command refuses bad settings alike.
        get_settings()
        return int(args.run(args))
    except (ValidationError, SettingsError) as exc:
        for line in describe_errors(exc):
            print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
