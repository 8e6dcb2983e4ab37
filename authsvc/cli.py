"""The ``authsvc`` command: serve, migrate, check-config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from authsvc import __version__, server, services, signing
from authsvc.core.errors import UnknownUser
from authsvc.logs import configure_logging
from authsvc.settings import ConfigError, Settings, load_settings
from authsvc.stores.base import StoreUnavailable
from authsvc.stores.migrations import MigrationsPending

log = logging.getLogger("authsvc")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authsvc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"authsvc {__version__}")
    parser.add_argument(
        "--env-file", default=".env", help="dotenv file to read (default: .env, if present)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the HTTP server")
    run.add_argument("--host", help="listen address (default: APP_HOST)")
    run.add_argument("--port", type=int, help="listen port (default: APP_PORT)")
    run.add_argument(
        "--workers", type=int, help="worker processes (default: WORKERS, else cores in production)"
    )
    commands.add_parser("migrate", help="apply pending database migrations")
    commands.add_parser("check-config", help="print the effective configuration, secrets masked")
    keys = commands.add_parser("keys", help="manage the access token keys (EdDSA, ES256, RS256)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_commands.add_parser("list", help="list the keys; * marks the one that signs")
    key_commands.add_parser("generate", help="add a key: published now, signs after rotate")
    key_commands.add_parser("rotate", help="make the newest key sign (generating one if needed)")
    remove = key_commands.add_parser("remove", help="delete a retired key: its tokens die")
    remove.add_argument("kid")
    users = commands.add_parser("users", help="manage accounts")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    for name, text in (
        ("disable", "refuse the account everywhere and end all its sessions at once"),
        ("enable", "let a disabled account log in again"),
    ):
        user_commands.add_parser(name, help=text).add_argument("email")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {}
    if getattr(args, "host", None):
        overrides["app_host"] = args.host
    if getattr(args, "port", None):
        overrides["app_port"] = args.port
    if getattr(args, "workers", None):
        overrides["workers"] = args.workers
    configure_logging("INFO")  # so that warnings while loading the settings are formatted
    try:
        settings = load_settings(args.env_file, **overrides)
        configure_logging(settings.log_level, settings.effective_log_format)
        if args.command == "serve":
            return server.run(settings)
        elif args.command == "migrate":
            applied = asyncio.run(services.migrate(settings))
            for migration in applied:
                print(f"applied {migration.version:04d}_{migration.name}")
            print("database is up to date" if not applied else f"{len(applied)} applied")
        elif args.command == "check-config":
            print_config(settings)
        elif args.command == "keys":
            run_keys_command(settings, args)
        elif args.command == "users":
            asyncio.run(run_users_command(settings, args))
    except (ConfigError, MigrationsPending, StoreUnavailable, UnknownUser) as exc:
        # One clear line, never a stack trace, for what an operator must fix.
        print(f"authsvc: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def run_keys_command(settings: Settings, args: argparse.Namespace) -> None:
    if args.keys_command == "list":
        for info in signing.list_keys(settings):
            print(f"{'*' if info.signing else ' '} {info.kid}  {info.source}")
    elif args.keys_command == "generate":
        info = signing.generate_key(settings)
        state = "signs now" if info.signing else "published; run `authsvc keys rotate` to sign"
        print(f"generated {info.kid} in {info.source} ({state})")
    elif args.keys_command == "rotate":
        info = signing.rotate_key(settings)
        print(f"{info.kid} signs now ({info.source}); restart the workers to pick it up")
    elif args.keys_command == "remove":
        print(f"removed {signing.remove_key(settings, args.kid)}")


async def run_users_command(settings: Settings, args: argparse.Namespace) -> None:
    opened = await services.open_services(settings)
    try:
        disable = args.users_command == "disable"
        user = await opened.accounts.set_disabled(args.email, disable)
        print(f"{'disabled' if disable else 'enabled'} {user.email}")
    finally:
        await opened.close()


def print_config(settings: Settings) -> None:
    for name, value in settings.masked().items():
        print(f"{name}={'' if value is None else value}")
    print(f"# users store: {settings.users_backend}")
    print(f"# sessions store: {settings.sessions_backend}")
