"""``dialtone`` command line: ``serve``, ``account``, ``clients``.

Flags are generated from :class:`dialtone.config.Settings`, so ``--help`` documents every
setting with its ``DIALTONE_*`` variable and default.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from dialtone import __version__, logs
from dialtone.config import Settings, env_name, flag_name, load_settings, setting_fields
from dialtone.errors import ConfigError, StartupError

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per action."""
    parser = argparse.ArgumentParser(
        prog="dialtone",
        description="dialtone: programmable-voice server (SIP registrar, RCML, REST API).",
    )
    parser.add_argument("--version", action="version", version=f"dialtone {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, scope, text in (
        ("serve", "serve", "run the server (SIP, media, REST API) until SIGINT/SIGTERM"),
        ("account", "storage", "print the AccountSid and AuthToken"),
        ("clients", "storage", "list the Clients with their registrations"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        _add_setting_flags(sub, scope)
    return parser


def _add_setting_flags(parser: argparse.ArgumentParser, scope: str) -> None:
    defaults = Settings()
    for f in setting_fields(scope):
        if not f.metadata["flag"]:
            continue
        default = getattr(defaults, f.name)
        if isinstance(default, tuple):
            default = ",".join(default).lower()
        shown = f" [env {env_name(f.name)}" + (f"; default {default}]" if default else "]")
        parser.add_argument(
            flag_name(f.name),
            dest=f.name,
            default=None,
            metavar=f.metadata["metavar"],
            help=f.metadata["help"] + shown,
        )
    parser.epilog = "Secrets come only from the environment: " + ", ".join(
        env_name(f.name) for f in setting_fields(scope) if not f.metadata["flag"]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 runtime/startup error, 2 config)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    flags = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(Settings)}
    try:
        settings = load_settings(flags)
    except ConfigError as exc:
        print(f"dialtone: error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        if args.command == "serve":
            from dialtone.app import serve

            _run(serve(settings))
        elif args.command == "account":
            _run(print_account(settings))
        elif args.command == "clients":
            _run(print_clients(settings))
    except StartupError as exc:
        print(f"dialtone: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


SWITCH_INTERVAL = 0.001
"""Seconds a busy thread keeps the GIL when another asks for it (Python's default: 5 ms).

The database driver (aiosqlite) runs SQLite in a thread that gives the GIL up on every
statement and row; while the event loop is busy, each time it wants the GIL back it waits a
whole switch interval.  With 5 ms a 500-row batch of call records took 16 s on a loaded
loop and timed out (records lost); with 1 ms it takes under 1 s (bench notes, 2026-12-02).
"""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed (design.md §5), else asyncio."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def _open_database(settings: Settings) -> Any:
    from dialtone.app import check_data_dir
    from dialtone.storage.database import Database

    if not settings.database_url:
        check_data_dir(settings.data_dir)
    db = Database(settings.effective_database_url)
    await db.migrate()
    return db


async def print_account(settings: Settings) -> None:
    """``dialtone account``."""
    from dialtone.accounts import stored_account

    db = await _open_database(settings)
    try:
        account = await stored_account(db)
    finally:
        await db.dispose()
    if account is None:
        raise StartupError("no account yet: run `dialtone serve` once to create it")
    print(f"AccountSid: {account.sid}\nAuthToken:  {account.auth_token}")


async def print_clients(settings: Settings) -> None:
    """``dialtone clients``: each Client, online or not, and its stored registrations."""
    from rich.console import Console
    from rich.table import Table

    from dialtone.storage.repository import Clients, Registrations

    db = await _open_database(settings)
    now = datetime.now(UTC)
    try:
        async with db.session() as session:
            clients = await Clients(session).all_with_realm()
            bindings = await Registrations(session).live(now)
    finally:
        await db.dispose()
    by_client: dict[str, list[Any]] = {}
    for binding in bindings:
        by_client.setdefault(binding.client_sid, []).append(binding)
    table = Table(title=f"Clients ({len(clients)})")
    for column in ("login", "sid", "online", "contact", "transport", "source", "expires"):
        table.add_column(column)
    for client in sorted(clients, key=lambda c: c.login):
        rows = by_client.get(client.sid, [])
        if not rows:
            table.add_row(client.login, client.sid, "no", "", "", "", "")
        for i, b in enumerate(rows):
            table.add_row(
                client.login if i == 0 else "",
                client.sid if i == 0 else "",
                "yes" if i == 0 else "",
                b.contact,
                b.transport,
                f"{b.source_host}:{b.source_port}",
                f"{int((b.expires_at - now).total_seconds())}s",
            )
    Console(width=200).print(table)
