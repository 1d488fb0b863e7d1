"""``checkin-realtime``: serve, migrate, export-schema."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from db.migrate import upgrade

    from .app import create_app
    from .settings import get_settings

    settings = get_settings()
    if not args.no_migrate:
        upgrade(settings.database_url)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    from .settings import get_settings

    upgrade(get_settings().database_url, args.revision)
    return 0


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
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
