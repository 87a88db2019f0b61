"""The running service's shared parts, built once per process from its settings."""

from __future__ import annotations

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
from service.urls import UrlPolicy, guarded_client
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
    # The handlers' client for user- and payload-supplied URLs: the egress guard.
    egress: httpx.AsyncClient
    sender: Sender
    # Where this process's own API answers (for the simulator), when it serves HTTP.
    self_url: str
    simulator: SimulatorServer | None = None
    configured_key_hashes: frozenset[str] = field(default_factory=frozenset)

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
        policy = UrlPolicy(settings.allow_private_urls, settings.allowed_cidrs)
        egress = guarded_client(policy, settings.provider_timeout)
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
            providers[name].egress = egress
        session = open_session(settings, policy)
        context = Context(
            settings=settings,
            store=store,
            providers=providers,
            tokens=ReceiverTokens(secret_keys),
            callback_secrets=CallbackSecrets(store, settings.callback_secrets),
            url_policy=policy,
            http=http,
            egress=egress,
            sender=Sender(session, policy),
            self_url=own_url,
            simulator=simulator,
            configured_key_hashes=frozenset(hash_api_key(key) for key in settings.api_keys),
        )
        try:
            yield context
        finally:
            if simulator is not None:
                await simulator.aclose()
            await http.aclose()
            await egress.aclose()
            await session.close()
    finally:
        await store.close()
