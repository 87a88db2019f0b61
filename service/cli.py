"""The `videohooks` command: serve, web, worker, migrate, demo, listen, api-key,
rotate-callback-secret, redeliver.

Exit codes: 0 clean stop, 1 a runtime failure or a refused request (an unknown id), 2 bad
configuration (one line naming the variable).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any

from service import __version__, logs
from service.settings import ConfigError, Settings
from storage import StorageError, Store

DESCRIPTION = (
    "Signed webhooks for AI video generation: videohooks submits each job to its provider, "
    "follows it by webhook or by polling, and delivers exactly one video.completed or "
    "video.failed event to your receivers, signed (Standard Webhooks) and retried."
)
EPILOG = (
    "Configuration comes from the environment, every variable optional (README.md, "
    "Configuration): the database is $VIDEOHOOKS_DATABASE_URL (default "
    "sqlite:///./videohooks.db). Exit codes: 0 done or clean stop, 1 a runtime failure or a "
    "refused request, 2 bad configuration. `videohooks COMMAND --help` describes a command."
)
DATABASE = " Uses the database at $VIDEOHOOKS_DATABASE_URL (default sqlite:///./videohooks.db)."
SERVICE = (
    " Reads every VIDEOHOOKS_* variable (README.md, Configuration); the database is "
    "$VIDEOHOOKS_DATABASE_URL (default sqlite:///./videohooks.db)."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videohooks", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the installed version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, help_ in (
        ("serve", "API and worker in one process (the embedded default)"),
        ("web", "the HTTP API only (scale-out; run workers beside it)"),
    ):
        command = _command(commands, name, help_, SERVICE)
        _listening(command, int(os.environ.get("PORT") or 8000), "$PORT, else 8000")
        _processes(command)
    _processes(
        _command(commands, "worker", "submitter, poller and dispatcher only (scale-out)", SERVICE)
    )
    _command(commands, "migrate", "create or upgrade the schema, then exit", DATABASE)
    _command(
        commands,
        "demo",
        "a self-contained tour with a local subscriber",
        " Runs on a temporary database and ports of its own; exits 0 once three jobs' events "
        "arrived verified.",
    )
    api_key = _command(
        commands,
        "api-key",
        "API keys: create (the default; printed once), list, revoke",
        " Keys are stored hashed; while $VIDEOHOOKS_API_KEYS is set, only its keys are accepted "
        "and create is refused (exit 2)." + DATABASE,
    )
    api_key.set_defaults(name=None)
    actions = api_key.add_subparsers(dest="action", metavar="action")
    create = _command(actions, "create", "create an API key and print it once", DATABASE)
    create.add_argument("--name", help="what the key is for, shown by list (default: none)")
    _command(actions, "list", "every stored key: id, name, prefix, created, last used", DATABASE)
    revoke = _command(
        actions, "revoke", "refuse a key from now on, in every process within seconds", DATABASE
    )
    revoke.add_argument("id", metavar="ID", help="the key's id (key_…), as `list` shows it")
    _command(
        commands,
        "rotate-callback-secret",
        "a new secret for callback deliveries (the old one signs too for the grace period)",
        " The grace period is $VIDEOHOOKS_SECRET_GRACE (default 24h); refused (exit 2) when "
        "$VIDEOHOOKS_CALLBACK_SECRET is set." + DATABASE,
    )
    listen = _command(
        commands,
        "listen",
        "a local receiver that prints signed deliveries",
        " Subscribe the URL it prints.",
    )
    _listening(listen, 9000, "9000")
    listen.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="WHSEC",
        help="a whsec_… secret to verify signatures with; repeat for several "
        "(default: none, signatures are not checked)",
    )
    redeliver = _command(
        commands,
        "redeliver",
        "send an event again now",
        " Queues it for a running worker, which sends it within moments, like "
        "POST /v1/events/{id}/redeliver; exits 1 for an unknown event or subscription." + DATABASE,
    )
    redeliver.add_argument("event_id", metavar="EVT_ID", help="the event to send (evt_…)")
    redeliver.add_argument(
        "--subscription",
        metavar="SUB_ID",
        help="send it to this subscription or hook only, even one that did not have it "
        "(default: every subscription, hook and callback URL that had it)",
    )
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_: str,
    details: str,
) -> argparse.ArgumentParser:
    description = f"{help_[0].upper()}{help_[1:]}.{details}"
    return commands.add_parser(name, help=help_, description=description)


def _listening(command: argparse.ArgumentParser, port: int, port_default: str) -> None:
    command.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default %(default)s; 0.0.0.0 for every interface)",
    )
    command.add_argument(
        "--port", type=int, default=port, help=f"the port to listen on (default {port_default})"
    )


def _processes(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--processes",
        type=_positive,
        metavar="N",
        help="run the work in N processes, one per core, sharing one port "
        "(default $VIDEOHOOKS_PROCESSES, else the number of cores)",
    )
    # How a supervisor (service/supervisor.py) hands its children their socket and ready pipe.
    for option in ("--listen-fd", "--ready-fd", "--supervised-by"):
        command.add_argument(option, type=int, help=argparse.SUPPRESS)


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def run(main: Coroutine[Any, Any, int]) -> int:
    """Runs on uvloop where it is installed (measured faster on the delivery path), else on
    asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"videohooks: bad configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    for warning in settings.warnings:
        logging.getLogger("videohooks.settings").warning(warning)
    try:
        return run(_dispatch(args, settings))
    except ConfigError as exc:  # found at start: a stored secret no configured key opens
        print(f"videohooks: bad configuration: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"videohooks: database error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"videohooks: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from service import demo, listen, server

    if args.command in ("serve", "web", "worker"):
        launch = server.Launch(
            command=args.command,
            host=getattr(args, "host", None),
            port=getattr(args, "port", 0),
            processes=args.processes or settings.processes,
            listen_fd=args.listen_fd,
            ready_fd=args.ready_fd,
            supervised_by=args.supervised_by,
        )
        return await server.run(settings, launch)
    if args.command == "migrate":
        return await _migrate(settings)
    if args.command == "api-key":
        return await _api_key(settings, args)
    if args.command == "rotate-callback-secret":
        return await _rotate_callback_secret(settings)
    if args.command == "listen":
        return await listen.run(args.host, args.port, args.secret)
    if args.command == "redeliver":
        return await _redeliver(settings, args.event_id, args.subscription)
    return await demo.run()


async def _migrate(settings: Settings) -> int:
    from service.database import open_database

    store = await open_database(settings)
    await store.close()
    print(f"schema up to date, secrets sealed with the newest key ({settings.database_url})")
    return 0


async def _api_key(settings: Settings, args: argparse.Namespace) -> int:
    from service.database import open_database

    action = args.action or "create"  # bare `videohooks api-key`, as older docs have it
    if settings.api_keys and action == "create":
        print("videohooks: VIDEOHOOKS_API_KEYS is set; keys are taken from it", file=sys.stderr)
        return 2
    store = await open_database(settings)
    try:
        if action == "create":
            return await _create_api_key(store, args.name)
        if settings.api_keys:
            print(
                "VIDEOHOOKS_API_KEYS is set: only its keys are accepted; the stored keys below "
                "are not, until it is unset (to revoke one of its keys, remove it and restart)"
            )
        if action == "list":
            return await _list_api_keys(store)
        return await _revoke_api_key(store, args.id)
    finally:
        await store.close()


async def _create_api_key(store: Store, name: str | None) -> int:
    from service.api_keys import new_api_key

    key, record = new_api_key(name)
    await store.add_api_key(record)
    print(f"API key {record.id} (shown once; only its hash is stored): {key}")
    return 0


async def _list_api_keys(store: Store) -> int:
    rows = [("ID", "NAME", "PREFIX", "CREATED", "LAST USED", "STATUS")]
    for key in await store.list_api_keys():
        status = "active" if key.revoked_at is None else f"revoked {_when(key.revoked_at)}"
        last_used = "never" if key.last_used_at is None else _when(key.last_used_at)
        prefix = f"{key.prefix}…" if key.prefix else "-"
        rows.append((key.id, key.name or "-", prefix, _when(key.created_at), last_used, status))
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


async def _revoke_api_key(store: Store, key_id: str) -> int:
    from service.api_keys import CACHE_TTL

    if not await store.revoke_api_key(key_id, time.time()):
        print(f"videohooks: no active API key {key_id}", file=sys.stderr)
        return 1
    print(f"revoked {key_id}: every process refuses it within {CACHE_TTL:g} s")
    return 0


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


async def _redeliver(settings: Settings, event_id: str, subscription_id: str | None) -> int:
    from service.database import open_database
    from service.redelivery import RedeliveryRefused, redeliver

    store = await open_database(settings)
    try:
        queued = await redeliver(store, event_id, subscription_id, time.time())
    except RedeliveryRefused as exc:
        named = event_id if exc.field == "event_id" else subscription_id
        print(f"videohooks: {named}: {exc.message} ({settings.database_url})", file=sys.stderr)
        return 1
    finally:
        await store.close()
    if queued:
        print(f"queued {queued} deliveries of {event_id}: a running worker sends them now")
    else:
        print(f"nothing queued for {event_id}: its deliveries are being sent at this moment")
    return 0


async def _rotate_callback_secret(settings: Settings) -> int:
    from service.callbacks import CallbackSecrets, CallbackSecretsFromEnvironment
    from service.database import open_database

    store = await open_database(settings)
    try:
        secret, until = await CallbackSecrets(store, settings.callback_secrets).rotate(
            settings.secret_grace
        )
    except CallbackSecretsFromEnvironment as exc:
        print(f"videohooks: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
    print(f"callback secret: {secret} (the previous one also signs until {expiry})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
