"""The `videohooks` command: serve, web, worker, migrate, demo, listen, api-key,
rotate-callback-secret.

Exit codes: 0 clean stop, 1 a runtime failure, 2 bad configuration (one line naming the variable).
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

from service import logs
from service.settings import ConfigError, Settings
from storage import StorageError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videohooks", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, help_ in (
        ("serve", "API and worker in one process (the embedded default)"),
        ("web", "the HTTP API only (scale-out)"),
    ):
        command = commands.add_parser(name, help=help_)
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    commands.add_parser("worker", help="submitter, poller and dispatcher only (scale-out)")
    commands.add_parser("migrate", help="create or upgrade the schema, then exit")
    commands.add_parser("demo", help="a self-contained tour with a local subscriber")
    commands.add_parser("api-key", help="create another API key and print it once")
    commands.add_parser(
        "rotate-callback-secret",
        help="a new secret for callback deliveries (the old one signs too for the grace period)",
    )
    listen = commands.add_parser("listen", help="a local receiver that prints signed deliveries")
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--port", type=int, default=9000)
    listen.add_argument("--secret", action="append", default=[], help="whsec_… to verify with")
    return parser


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

    if args.command == "serve":
        return await server.run(settings, args.host, args.port, worker=True)
    if args.command == "web":
        return await server.run(settings, args.host, args.port, worker=False)
    if args.command == "worker":
        return await server.run(settings, None, 0, worker=True)
    if args.command == "migrate":
        return await _migrate(settings)
    if args.command == "api-key":
        return await _api_key(settings)
    if args.command == "rotate-callback-secret":
        return await _rotate_callback_secret(settings)
    if args.command == "listen":
        return await listen.run(args.host, args.port, args.secret)
    return await demo.run()


async def _migrate(settings: Settings) -> int:
    from storage import open_store

    store = await open_store(settings.database_url)
    try:
        await store.migrate()
    finally:
        await store.close()
    print(f"schema up to date ({settings.database_url})")
    return 0


async def _api_key(settings: Settings) -> int:
    from service.context import hash_api_key, new_api_key
    from storage import open_store

    if settings.api_keys:
        print("videohooks: VIDEOHOOKS_API_KEYS is set; keys are taken from it", file=sys.stderr)
        return 2
    store = await open_store(settings.database_url)
    try:
        await store.migrate()
        key = new_api_key()
        await store.add_api_key(hash_api_key(key))
    finally:
        await store.close()
    print(f"API key (shown once; only its hash is stored): {key}")
    return 0


async def _rotate_callback_secret(settings: Settings) -> int:
    from service.callbacks import CallbackSecrets, CallbackSecretsFromEnvironment
    from storage import open_store

    store = await open_store(settings.database_url)
    try:
        await store.migrate()
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
