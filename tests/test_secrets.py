"""Secrets guarded: encrypted at rest (and sealed again when keys rotate or an older version
stored them in clear), a private database file, a subscription's secret shown only where asked
for, and no log line holding a token, a secret or an API key."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import sqlite3
import stat
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from service import logs
from service.api_keys import hash_api_key
from service.context import running
from service.encryption import key_file
from service.settings import ConfigError, Settings
from service.tokens import ReceiverTokens
from storage import StorageError, sql
from storage.ids import new_id
from storage.records import ApiKey
from tests.support.databases import BACKENDS
from tests.support.processes import Process
from tests.support.servers import eventually
from tests.support.service import API_KEY, running_service
from tests.support.signing import signed
from tests.support.subscriber import Received, recording_subscriber

pytestmark = pytest.mark.usefixtures("processes_reaped")

both_backends = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


async def rows(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """A query run on the database directly, as someone holding a copy of it would."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute(query, args).fetchall()
    for number in range(len(args)):
        query = query.replace("?", f"${number + 1}", 1)
    connection = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(query, *args)]
    finally:
        await connection.close()


async def stored_secrets(url: str) -> list[str]:
    subscriptions = await rows(url, "SELECT secret, previous_secret FROM subscriptions")
    meta = await rows(url, "SELECT value FROM meta WHERE key IN ('secret_key', 'callback_secrets')")
    return [value for row in subscriptions + meta for value in row if value is not None]


@both_backends
async def test_a_subscriptions_secret_is_shown_on_create_rotate_and_its_own_route_only(env):
    async with running_service(env) as svc:
        created = await svc.subscribe("http://127.0.0.1:9/hooks")
        secret, sub_id = created["secret"], created["id"]
        assert secret.startswith("whsec_")
        shown = (await svc.api.get(f"/v1/subscriptions/{sub_id}/secret")).json()
        assert shown == {
            "object": "subscription_secret",
            "subscription_id": sub_id,
            "secret": secret,
            "previous_secret_expires_at": None,
        }
        reads = [
            await svc.api.get(f"/v1/subscriptions/{sub_id}"),
            await svc.api.get("/v1/subscriptions"),
            await svc.api.patch(f"/v1/subscriptions/{sub_id}", json={"description": "x"}),
        ]
        for answer in reads:
            assert answer.status_code == 200 and "secret" not in answer.text.replace(
                "previous_secret_expires_at", ""
            )
        rotated = (await svc.api.post(f"/v1/subscriptions/{sub_id}/rotate-secret")).json()
        assert rotated["secret"] not in (secret, None)
        shown = (await svc.api.get(f"/v1/subscriptions/{sub_id}/secret")).json()
        assert shown["secret"] == rotated["secret"] and shown["previous_secret_expires_at"]
        missing = await svc.api.get("/v1/subscriptions/sub_missing/secret")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        document = (await svc.api.get("/openapi.json")).json()
        operation = document["paths"]["/v1/subscriptions/{subscription_id}/secret"]["get"]
        assert operation["security"] == [{"bearer": []}]
        schemas = document["components"]["schemas"]
        assert "secret" not in schemas["SubscriptionOut"]["properties"]
        assert "secret" in schemas["SubscriptionWithSecret"]["properties"]
        listed = document["paths"]["/v1/subscriptions"]["get"]["responses"]["200"]
        assert "SubscriptionOut" in json.dumps(listed)


def verifies(secret: str, delivery: Received) -> bool:
    try:
        Webhook(secret).verify(delivery.body, delivery.headers)
    except WebhookVerificationError:
        return False
    return True


@both_backends
async def test_secrets_are_stored_encrypted_and_deliveries_still_verify(env):
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        created = await svc.subscribe(subscriber.url + "/events")
        rotated = (await svc.api.post(f"/v1/subscriptions/{created['id']}/rotate-secret")).json()
        callback_secrets = await svc.context.callback_secrets.load()
        await svc.submit({"after_s": 0.1}, callback_url=subscriber.url + "/callback")
        await eventually(lambda: len(subscriber.received) == 2)
        deliveries = {delivery.path: delivery for delivery in subscriber.received}
        # Signed with the new secret and, for the grace period, the old one: both read back.
        assert verifies(created["secret"], deliveries["/events"])
        assert verifies(rotated["secret"], deliveries["/events"])
        assert verifies(callback_secrets[0], deliveries["/callback"])
        secret_key = svc.store.cipher.open(await svc.store.meta_get("secret_key") or "")
        clear = [created["secret"], rotated["secret"], callback_secrets[0], secret_key]
    stored = await stored_secrets(env["VIDEOHOOKS_DATABASE_URL"])
    assert len(stored) == 4 and all(value.startswith("enc1:") for value in stored)
    assert not any(secret in value for secret in clear for value in stored)
    database = env["VIDEOHOOKS_DATABASE_URL"]
    if database.startswith("sqlite:"):
        files = Path(database.removeprefix("sqlite:///")).parent.glob("videohooks.db*")
        everything = b"".join(path.read_bytes() for path in files)
        assert not any(secret.encode() in everything for secret in clear)


async def test_the_sqlite_database_its_wal_and_its_key_file_are_created_private(env, tmp_path):
    async with running_service(env) as svc:
        await svc.subscribe("http://127.0.0.1:9/hooks")
        database = Path(env["VIDEOHOOKS_DATABASE_URL"].removeprefix("sqlite:///"))
        files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
        files.append(key_file(env["VIDEOHOOKS_DATABASE_URL"]))
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert "VIDEOHOOKS_ENCRYPTION_KEY" not in env
    # A file an older version made readable by everyone is no longer.
    os.chmod(database, 0o644)
    async with running_service(env):
        assert stat.S_IMODE(database.stat().st_mode) == 0o640


@both_backends
async def test_encryption_keys_rotate_and_a_key_not_configured_stops_the_start(env, tmp_path):
    old, new = new_key(), new_key()
    url = env["VIDEOHOOKS_DATABASE_URL"]
    env["VIDEOHOOKS_ENCRYPTION_KEY"] = old
    async with recording_subscriber() as subscriber:
        async with running_service(env) as svc:
            created = await svc.subscribe(subscriber.url)
            before = await stored_secrets(url)
        # The new key first, the old one after it: every start seals again with the new one.
        env["VIDEOHOOKS_ENCRYPTION_KEY"] = f"{new},{old}"
        async with running_service(env) as svc:
            after = await stored_secrets(url)
            assert len(after) == len(before) and set(after).isdisjoint(before)
            assert len({value.split(":")[1] for value in before + after}) == 2
            assert all(value.startswith(svc.store.cipher.prefix) for value in after)
        env["VIDEOHOOKS_ENCRYPTION_KEY"] = new
        async with running_service(env) as svc:
            await svc.submit({"after_s": 0.1})
            await eventually(lambda: subscriber.received)
            assert verifies(created["secret"], subscriber.received[0])
    env["VIDEOHOOKS_ENCRYPTION_KEY"] = old
    with pytest.raises(ConfigError, match="VIDEOHOOKS_ENCRYPTION_KEY: a stored secret is"):
        async with running(Settings.from_env(env)):
            pass
    migrate = await Process.start(["migrate"], env | {"VIDEOHOOKS_LOG_LEVEL": "WARNING"}, tmp_path)
    assert await migrate.exit_code() == 2
    [line] = (await migrate.stderr()).strip().splitlines()
    assert line.startswith("videohooks: bad configuration: VIDEOHOOKS_ENCRYPTION_KEY")
    assert old not in line and new not in line


async def create_a_0004_database(url: str) -> None:
    """The schema as the last version before encryption left it."""
    dialect = "sqlite" if url.startswith("sqlite:") else "postgres"
    wanted = [migration for migration in sql.migrations(dialect) if migration.version <= 4]
    table = sql.queries(dialect)["migrations_table"]
    if dialect == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.executescript(table)
            for migration in wanted:
                db.executescript(migration.sql)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                    (migration.version, migration.name),
                )
        return
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(table)
        for migration in wanted:
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2, 0)",
                migration.version,
                migration.name,
            )
    finally:
        await connection.close()


@both_backends
async def test_an_upgrade_from_a_0004_database_seals_what_it_stored_in_clear(env):
    url = env["VIDEOHOOKS_DATABASE_URL"]
    await create_a_0004_database(url)
    receiver_key, callback, secret, previous = (
        "legacy-receiver-key",
        "whsec_" + base64.b64encode(b"legacy callback secret!!").decode(),
        "whsec_" + base64.b64encode(b"legacy subscription one!").decode(),
        "whsec_" + base64.b64encode(b"legacy subscription two!").decode(),
    )
    async with recording_subscriber() as subscriber:
        now = time.time()
        for query, args in (
            ("INSERT INTO meta VALUES ('secret_key', ?)", (receiver_key,)),
            (
                "INSERT INTO meta VALUES ('callback_secrets', ?)",
                (json.dumps({"current": callback, "previous": []}),),
            ),
            ("INSERT INTO api_keys (hash, created_at) VALUES (?, ?)", (hash_api_key(API_KEY), now)),
            (
                "INSERT INTO subscriptions (id, url, events, status, secret, previous_secret,"
                " previous_secret_expires_at, created_at, updated_at)"
                " VALUES (?, ?, '[\"video.completed\"]', 'active', ?, ?, ?, ?, ?)",
                ("sub_legacy", subscriber.url, secret, previous, now + 3600, now, now),
            ),
        ):
            await rows(url, query, *args)
        del env["VIDEOHOOKS_API_KEYS"]  # the stored (legacy) key is the one accepted
        async with running_service(env) as svc:
            stored = await stored_secrets(url)
            assert len(stored) == 4 and all(value.startswith("enc1:") for value in stored)
            token = ReceiverTokens([receiver_key]).issue("vid_x", "simulator", 0)
            assert svc.context.tokens.verify(token).job_id == "vid_x"
            assert await svc.context.callback_secrets.load() == [callback]
            shown = (await svc.api.get("/v1/subscriptions/sub_legacy/secret")).json()
            assert shown["secret"] == secret
            await svc.submit({"after_s": 0.1}, callback_url=subscriber.url + "/callback")
            await eventually(lambda: len(subscriber.received) == 2)
        deliveries = {delivery.path: delivery for delivery in subscriber.received}
        assert verifies(secret, deliveries["/"]) and verifies(previous, deliveries["/"])
        assert verifies(callback, deliveries["/callback"])
    [(key_id, prefix)] = await rows(url, "SELECT id, prefix FROM api_keys")
    assert key_id == "key_" + hash_api_key(API_KEY)[:16] and prefix is None


@pytest.mark.parametrize("backend", BACKENDS[1:], indirect=True)
async def test_postgresql_without_an_encryption_key_keeps_one_and_never_misreads_a_secret(
    env, tmp_path
):
    """Every variable is optional: the first process keeps a generated key in its working
    directory; a process elsewhere, with another key, stops at start instead of misreading the
    secrets the first one sealed."""
    del env["VIDEOHOOKS_ENCRYPTION_KEY"]
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir(), elsewhere.mkdir()
    process = await Process.start(["web", "--port", "0"], env, first)
    try:
        await process.url()
    finally:
        assert await process.stop() == 0
    assert stat.S_IMODE((first / "videohooks.key").stat().st_mode) == 0o600
    assert "generated the key that encrypts stored secrets" in await process.stderr()
    again = await Process.start(["web", "--port", "0"], env, first)
    try:
        await again.url()  # the same key, from the same file
    finally:
        assert await again.stop() == 0
    stranger = await Process.start(["web", "--port", "0"], env, elsewhere)
    assert await stranger.exit_code() == 2
    assert "VIDEOHOOKS_ENCRYPTION_KEY" in (await stranger.stderr()).strip().splitlines()[-1]


@pytest.fixture
def log_output(monkeypatch):
    """Everything the service writes to its log, as `videohooks` configures it (JSON lines,
    tracebacks included), with what Python prints of unconfigured loggers (warnings and up)."""
    output = io.StringIO()
    monkeypatch.setattr(sys, "stderr", output)
    names = ("videohooks", "uvicorn.error")
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in names]
    logs.configure("DEBUG", "json")
    unconfigured = logging.StreamHandler(output)
    unconfigured.setLevel(logging.WARNING)
    logging.getLogger().addHandler(unconfigured)
    yield output
    logging.getLogger().removeHandler(unconfigured)
    for logger, level in saved:
        logger.handlers.clear()
        logger.setLevel(level)
        logger.propagate = True


async def test_no_log_line_holds_a_receiver_token_a_secret_or_an_api_key(env, log_output):
    del env["VIDEOHOOKS_API_KEYS"]
    env["VIDEOHOOKS_LOG_LEVEL"] = "DEBUG"
    other_key = "vhk_" + base64.urlsafe_b64encode(os.urandom(24)).decode()
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        store = svc.store
        for key in (API_KEY, other_key):
            record = ApiKey(id=new_id("key"), hash=hash_api_key(key), created_at=time.time())
            await store.add_api_key(record)
        created = await svc.subscribe(subscriber.url)
        video = await svc.submit({"after_s": 3600})
        token = svc.context.tokens.issue(video["id"], "simulator", 0)
        hook = f"/hooks/simulator/{token}"
        sub = f"/v1/subscriptions/{created['id']}"
        secrets = [token, created["secret"], API_KEY, other_key]

        def fail(name: str, error: Exception) -> None:
            async def failing(*args: Any, **kwargs: Any) -> Any:
                raise error

            setattr(store, name, failing)

        async def answer(
            method: str,
            path: str,
            key: str = API_KEY,
            headers: dict[str, str] | None = None,
            **kwargs: Any,
        ) -> int:
            headers = {"authorization": f"Bearer {key}"} | (headers or {})
            response = await svc.api.request(method, path, headers=headers, **kwargs)
            return response.status_code

        fail("get_job", RuntimeError("the database broke"))
        assert await answer("POST", hook, content=b"{}") == 500
        del store.get_job
        fail("add_webhook", StorageError("the database is busy"))
        body, headers = signed(svc.context.providers["simulator"].secret, {})
        assert await answer("POST", hook, content=body, headers=headers) == 503
        del store.add_webhook
        assert await answer("POST", hook + "x", content=b"{}") == 401
        fail("get_subscription", RuntimeError("the database broke"))
        assert await answer("GET", f"{sub}/secret") == 500
        del store.get_subscription
        fail("rotate_secret", RuntimeError("the database broke"))
        assert await answer("POST", f"{sub}/rotate-secret") == 500
        del store.rotate_secret
        rotated = (await svc.api.post(f"{sub}/rotate-secret")).json()["secret"]
        assert await answer("GET", f"{sub}/secret") == 200
        secrets.append(rotated)
        fail("api_key_known", RuntimeError("the database broke"))
        assert await answer("GET", "/v1/videos", key=other_key) == 500
        assert await answer("GET", "/v1/videos", key=other_key + "-wrong") == 500
        del store.api_key_known
        assert await answer("GET", "/v1/videos", key="vhk_not_a_key") == 401
    logged = log_output.getvalue()
    assert logged.count('"msg": "unexpected error"') == 5, logged
    assert '"route": "/hooks/{provider}/{token}"' in logged
    for secret in secrets:
        assert secret not in logged
