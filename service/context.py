"""The running service's shared parts, built once per process from its settings."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import httpx2 as httpx

from handlers import handler_class, implemented
from handlers.base import Provider
from handlers.simulator import SimulatorServer
from service.callbacks import CallbackSecrets
from service.delivery import Sender, open_session
from service.settings import Settings
from service.tokens import ReceiverTokens
from service.urls import UrlPolicy
from storage import Store, open_store


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "vhk_" + secrets.token_urlsafe(32)


@dataclass
class Context:
    settings: Settings
    store: Store
    providers: dict[str, Provider]
    tokens: ReceiverTokens
    callback_secrets: CallbackSecrets
    url_policy: UrlPolicy
    http: httpx.AsyncClient
    sender: Sender
    # Where this process's own API answers (for the simulator), when it serves HTTP.
    self_url: str
    simulator: SimulatorServer | None = None
    configured_key_hashes: frozenset[str] = field(default_factory=frozenset)
    # VIDEOHOOKS_SECRET_KEY (or the generated one), newest first: receiver tokens and the
    # dashboard's cookies are signed with it, each with a salt of its own.
    secret_keys: tuple[str, ...] = ()
    # Set when the process begins to stop: long-lived responses (the dashboard's live updates)
    # end then, so that the HTTP server's graceful shutdown does not wait for them.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _known_key_hashes: set[str] = field(default_factory=set)

    async def api_key_valid(self, key_hash: str) -> bool:
        """The one rule for API keys, for the API's Bearer keys and the dashboard's sign-in and
        sessions alike: configured keys (VIDEOHOOKS_API_KEYS) when set, else the stored ones."""
        if self.configured_key_hashes:
            return key_hash in self.configured_key_hashes
        if key_hash in self._known_key_hashes:
            return True
        if await self.store.api_key_known(key_hash):
            self._known_key_hashes.add(key_hash)
            return True
        return False

    def provider(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def receiver_url(self, provider: str, job_id: str, attempt_no: int) -> str | None:
        """The callback URL handed to a provider, or None when no public URL is configured."""
        if self.settings.public_url is None:
            return None
        token = self.tokens.issue(job_id, provider, attempt_no)
        return f"{self.settings.public_url}/hooks/{provider}/{token}"


def _derived_secret(key: str, purpose: str) -> str:
    digest = hmac.new(key.encode(), purpose.encode(), hashlib.sha256).digest()[:24]
    return "whsec_" + base64.b64encode(digest).decode()


@asynccontextmanager
async def running(settings: Settings, self_url: str | None = None) -> AsyncIterator[Context]:
    store = await open_store(settings.database_url)
    try:
        await store.migrate()
        secret_keys = list(settings.secret_keys) or [
            await store.meta_get_or_set("secret_key", secrets.token_urlsafe(32))
        ]
        own_url = self_url or settings.public_url or "http://127.0.0.1:8000"
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.provider_timeout, connect=min(5.0, settings.provider_timeout)
            ),
            headers={"user-agent": "videohooks/0.1"},
        )
        providers: dict[str, Provider] = {}
        simulator = None
        for name in implemented():
            config = settings.providers.get(name)
            if config is None or (name == "simulator" and not settings.simulator):
                continue
            if name == "simulator":
                config = replace(
                    config,
                    base_url=config.base_url or f"{own_url}/simulator",
                    webhook_secret=config.webhook_secret
                    or _derived_secret(secret_keys[0], "simulator-webhooks"),
                )
                simulator = SimulatorServer(
                    webhook_secret=config.webhook_secret,
                    public_base_url=f"{settings.public_url or own_url}/simulator",
                )
            providers[name] = handler_class(name)(config, http)
        policy = UrlPolicy(settings.allow_private_urls, settings.allowed_cidrs)
        session = open_session(settings, policy)
        context = Context(
            settings=settings,
            store=store,
            providers=providers,
            tokens=ReceiverTokens(secret_keys),
            callback_secrets=CallbackSecrets(store, settings.callback_secrets),
            url_policy=policy,
            http=http,
            sender=Sender(session, policy),
            self_url=own_url,
            simulator=simulator,
            configured_key_hashes=frozenset(hash_api_key(key) for key in settings.api_keys),
            secret_keys=tuple(secret_keys),
        )
        try:
            yield context
        finally:
            if simulator is not None:
                await simulator.aclose()
            await http.aclose()
            await session.close()
    finally:
        await store.close()
