"""The ``authsvc`` command line; ``authsvc --help`` lists its commands."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from authsvc import __version__
from authsvc.core.errors import DomainError, InvalidInput
from authsvc.logs import configure_logging
from authsvc.optional_libraries import leave_out_cryptography, needs_cryptography
from authsvc.settings import ConfigError, Settings, endpoint_shown, load_settings
from authsvc.stores.base import StoreUnavailable
from authsvc.stores.migrations import MigrationsPending

# server, services and signing load PyJWT and PyMySQL: each command imports them once the
# settings have said whether cryptography is needed (authsvc.optional_libraries).
if TYPE_CHECKING:
    from authsvc.services import Services
    from authsvc.signing import KeyInfo

log = logging.getLogger("authsvc")

#: What the CLI never prints raw: C0, DEL and C1 controls (ESC and CSI move the cursor,
#: recolour, retitle or fake lines of an operator's terminal), the Unicode line breaks and
#: the bidirectional controls (which reorder what is shown). A user agent or an old email
#: row is the client's text, not ours.
_UNPRINTABLE = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
    **{code: f"\\u{code:04x}" for code in (0x2028, 0x2029, 0x200E, 0x200F, 0x061C)},
    **{code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))},
}


def emit(line: str, *, error: bool = False) -> None:
    """Print one line of CLI output (to stderr when ``error``), every control character
    in it escaped: all the CLI's printing goes through here."""
    print(line.translate(_UNPRINTABLE), file=sys.stderr if error else sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authsvc")
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
    create = user_commands.add_parser(
        "create", help="create an account (the password is asked for, or read from stdin)"
    )
    create.add_argument("email")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    listing = user_commands.add_parser("list", help="list accounts, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    for name, text in (
        ("disable", "refuse the account everywhere and end all its sessions at once"),
        ("enable", "let a disabled account log in again"),
        ("delete", "delete the account and end all its sessions"),
        ("confirm", "mark the account's email confirmed (when its mail never came)"),
    ):
        user_commands.add_parser(name, help=text).add_argument("email")
    sessions = commands.add_parser("sessions", help="see and end the sessions of an account")
    session_commands = sessions.add_subparsers(dest="sessions_command", required=True)
    session_commands.add_parser("list", help="the account's live sessions").add_argument("email")
    revoke = session_commands.add_parser("revoke", help="end one session, or --all")
    revoke.add_argument("email")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("session_id", nargs="?")
    target.add_argument("--all", action="store_true", help="every session of the account")
    outbox = commands.add_parser(
        "outbox", help="see, retry and purge the outbox (mail and webhooks)"
    )
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    outbox_list = outbox_commands.add_parser(
        "list", help="messages, newest first (never their bodies)"
    )
    outbox_list.add_argument("--state", choices=["queued", "sending", "sent", "dead"])
    outbox_list.add_argument("--limit", type=int, default=100)
    retry = outbox_commands.add_parser(
        "retry", help="queue a message again, due now, its attempts reset"
    )
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("message_id", nargs="?")
    which.add_argument("--dead", action="store_true", help="every dead message")
    outbox_commands.add_parser("purge-dead", help="delete every dead message")
    # From the commands themselves, so that it never falls behind them again.
    parser.description = "JWT authentication service. Commands: " + ", ".join(commands.choices)
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
            if not needs_cryptography(settings):
                leave_out_cryptography()
            from authsvc import server

            return server.run(settings)
        elif args.command == "migrate":
            from authsvc import services

            applied = asyncio.run(services.migrate(settings))
            for done in applied:
                emit(f"applied {done.migration.version:04d}_{done.migration.name}")
                if done.report:
                    for line in (done.report.summary, *done.report.problems):
                        emit(f"  {line}")
            emit("database is up to date" if not applied else f"{len(applied)} applied")
        elif args.command == "check-config":
            print_config(settings)
        elif args.command == "keys":
            run_keys_command(settings, args)
        elif args.command in ("users", "sessions", "outbox"):
            asyncio.run(run_admin_command(settings, args))
    except (ConfigError, MigrationsPending, StoreUnavailable, DomainError) as exc:
        # One clear line, never a stack trace, for what an operator must fix.
        emit(f"authsvc: {exc}", error=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def run_keys_command(settings: Settings, args: argparse.Namespace) -> None:
    from authsvc import signing
    from authsvc.key_reload import FOLLOW_BOUND_S

    if args.keys_command == "list":
        for info in signing.list_keys(settings):
            emit(f"{'*' if info.signing else ' '} {info.kid}  {info.source}  {describe(info)}")
    elif args.keys_command == "generate":
        info = signing.generate_key(settings)
        state = "signs now" if info.signing else "published; run `authsvc keys rotate` to sign"
        emit(f"generated {info.kid} in {info.source} ({state})")
    elif args.keys_command == "rotate":
        info = signing.rotate_key(settings)
        emit(
            f"{info.kid} signs now ({info.source}); every worker follows within "
            f"{FOLLOW_BOUND_S} s; the former key retires in "
            f"{settings.key_retention_s} s"
        )
        published_s = signing.published_for_s(info)
        if published_s is not None and published_s < settings.jwks_max_age_s:
            emit(
                f"warning: {info.kid} was published {published_s:.0f} s ago, less than "
                f"JWKS_MAX_AGE_S={settings.jwks_max_age_s}: a verifier that does not "
                "refetch the JWKS on an unknown kid refuses its tokens until its cache "
                "expires (next time: `keys generate`, wait, then `keys rotate`)",
                error=True,
            )
    elif args.keys_command == "remove":
        emit(f"removed {signing.remove_key(settings, args.kid)}")


def describe(info: KeyInfo) -> str:
    """A key's state in `authsvc keys list`."""
    state = info.state
    if state is None or state.name in ("signing", "next"):
        return "signing" if info.signing else "next (published, not signing yet)"
    if state.until is None:
        return "retired (published and accepted until removed)"
    until = state.until.strftime("%Y-%m-%dT%H:%M:%SZ")
    if state.name == "retired":
        return f"retired until {until} (published and accepted until then)"
    return f"expired {until} (neither published nor accepted; `keys remove` deletes it)"


async def run_admin_command(settings: Settings, args: argparse.Namespace) -> None:
    """`authsvc users …`, `authsvc sessions …` and `authsvc outbox …`, through the same
    core services as the API, so the same rules and audit events apply."""
    from authsvc import services

    sub = getattr(args, f"{args.command}_command")
    opened = await services.open_services(settings)
    try:
        await ADMIN_COMMANDS[(args.command, sub)](opened, args)
    finally:
        await opened.close()


async def users_create(opened: Services, args: argparse.Namespace) -> None:
    password = read_password(args.password_stdin)
    try:
        user = await opened.accounts.create_user(args.email, password)
    except InvalidInput as exc:
        raise ConfigError(exc.message) from None
    emit(f"created {user.email} ({user.id})")


async def users_list(opened: Services, args: argparse.Namespace) -> None:
    for user in await opened.accounts.list_users(args.limit, args.offset):
        flags = [name for name, on in (("disabled", user.disabled),
                                       ("unconfirmed", not user.confirmed)) if on]  # fmt: skip
        emit(f"{user.id}  {user.email}  {user.created_at.isoformat()}  {','.join(flags) or '-'}")


async def users_disable(opened: Services, args: argparse.Namespace) -> None:
    disable = args.users_command == "disable"
    user = await opened.accounts.set_disabled(args.email, disable)
    emit(f"{'disabled' if disable else 'enabled'} {user.email}")


async def users_delete(opened: Services, args: argparse.Namespace) -> None:
    user = await opened.accounts.delete_user(args.email)
    emit(f"deleted {user.email} ({user.id})")


async def users_confirm(opened: Services, args: argparse.Namespace) -> None:
    user = await opened.accounts.confirm_email(args.email)
    emit(f"{user.email} was confirmed already" if user.confirmed else f"confirmed {user.email}")


async def sessions_list(opened: Services, args: argparse.Namespace) -> None:
    user, live = await opened.sessions.sessions_of(args.email)
    for session in live:
        emit(f"{session.id}  created {session.created_at.isoformat()}  "
              f"last used {session.last_used_at.isoformat()}  {session.ip or '-'}  "
              f"{session.user_agent or '-'}")  # fmt: skip
    emit(f"{len(live)} live sessions of {user.email}")


async def sessions_revoke(opened: Services, args: argparse.Namespace) -> None:
    session_id = None if args.all else args.session_id
    ended = await opened.sessions.end_sessions_of(args.email, session_id)
    emit(f"ended {ended} sessions")


async def outbox_list(opened: Services, args: argparse.Namespace) -> None:
    entries = await opened.outbox.list(args.limit, args.state)
    for entry in entries:
        # A webhook's endpoint is the operator's own setting (its query left out); a
        # mail's recipient is a user's address, never printed.
        to = f"  to {endpoint_shown(entry.recipient)}" if entry.channel == "webhook" else ""
        emit(f"{entry.id}  {entry.channel}  {entry.kind}  {entry.state}  attempts "
             f"{entry.attempts}  next {entry.next_attempt_at.isoformat(timespec='seconds')}  "
             f"created {entry.created_at.isoformat(timespec='seconds')}{to}  "
             f"{entry.last_error or '-'}")  # fmt: skip
    emit(f"{len(entries)} messages")


async def outbox_retry(opened: Services, args: argparse.Namespace) -> None:
    if args.dead:
        emit(f"queued {await opened.outbox.requeue_dead()} dead messages again")
    elif await opened.outbox.requeue(args.message_id):
        emit(f"queued {args.message_id} again")
    else:
        raise ConfigError(f"no dead or queued message {args.message_id}")


async def outbox_purge_dead(opened: Services, args: argparse.Namespace) -> None:
    emit(f"deleted {await opened.outbox.purge_dead()} dead messages")


ADMIN_COMMANDS = {
    ("users", "create"): users_create,
    ("users", "list"): users_list,
    ("users", "disable"): users_disable,
    ("users", "enable"): users_disable,
    ("users", "delete"): users_delete,
    ("users", "confirm"): users_confirm,
    ("sessions", "list"): sessions_list,
    ("sessions", "revoke"): sessions_revoke,
    ("outbox", "list"): outbox_list,
    ("outbox", "retry"): outbox_retry,
    ("outbox", "purge-dead"): outbox_purge_dead,
}


def read_password(from_stdin: bool) -> str:
    """The new account's password: never from the command line, where `ps` shows it."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the passwords differ")
    return first


def print_config(settings: Settings) -> None:
    for name, value in settings.masked().items():
        emit(f"{name}={'' if value is None else value}")
    emit(f"# users store: {settings.users_backend}")
    emit(f"# sessions store: {settings.sessions_backend}")
    for note in trusted_proxy_notes(settings):
        emit(f"# {note}")


#: A trusted network of more addresses than this holds more than proxies, and any
#: client inside it can choose its own address (and rate-limit bucket).
MAX_PROXY_NETWORK_ADDRESSES = 256


def trusted_proxy_notes(settings: Settings) -> list[str]:
    """What check-config says of TRUSTED_PROXIES. It cannot see traffic: the served
    requests that show a proxy is not trusted are logged and counted by the workers."""
    networks = settings.trusted_proxy_networks
    if not networks:
        return [
            "trusted proxies: none: X-Forwarded-For and X-Real-IP are ignored, and each "
            "connection's own address is its client's",
            "warning: behind a proxy (nginx, a load balancer) TRUSTED_PROXIES must be set "
            "to its address, or every client shares the proxy's address and its "
            "per-address rate limits; requests that carry forwarding headers from an "
            "untrusted peer are logged and counted in authsvc_untrusted_forwarding_total",
        ]
    notes = [
        "trusted proxies: "
        + ", ".join(map(str, networks))
        + " (X-Forwarded-For and X-Real-IP are believed from these only)"
    ]
    for network in networks:
        if network.num_addresses > MAX_PROXY_NETWORK_ADDRESSES:
            notes.append(
                f"warning: TRUSTED_PROXIES holds {network}, a range of "
                f"{network.num_addresses} addresses: any client inside it can choose its "
                "own address and rate-limit bucket with X-Forwarded-For; trust only the "
                "proxies' own addresses"
            )
    return notes
