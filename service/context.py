"""The running service's shared parts, built once per process from its settings."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import httpx2 as httpx

from handlers import handler_class, implemented
from handlers.base import Provider
from handlers.simulator import SimulatorServer
from service import __version__
from service.api_keys import KeyCheck, hash_api_key
from service.callbacks import CallbackSecrets
from service.database import open_database
from service.delivery import Sender, open_session
from service.settings import Settings
from service.tokens import InvalidToken, ReceiverTokens
from service.urls import UrlPolicy, guarded_client
from storage import Store


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
    # VIDEOHOOKS_SECRET_KEY (or the generated one), newest first: receiver tokens and the
    # dashboard's cookies are signed with it, each with a salt of its own.
    secret_keys: tuple[str, ...] = ()
    # Set when the process begins to stop: long-lived responses (the dashboard's live updates)
    # end then, so that the HTTP server's graceful shutdown does not wait for them.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Which API keys are accepted: one per process, for the API and the dashboard alike.
    keys: KeyCheck = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeyCheck(self.store, self.configured_key_hashes)

    def provider(self, name: str) -> Provider | None:
        return self.providers.get(name)

    def receiver_url(self, provider: str, job_id: str, attempt_no: int) -> str | None:
        """The callback URL handed to a provider, or None when no public URL is configured."""
        if self.settings.public_url is None:
            return None
        token = self.tokens.issue(job_id, provider, attempt_no)
        return f"{self.settings.public_url}/hooks/{provider}/{token}"


def _derived(key: str, purpose: str) -> str:
    digest = hmac.new(key.encode(), purpose.encode(), hashlib.sha256).digest()[:24]
    return base64.b64encode(digest).decode()


def own_receiver(
    public_url: str | None, tokens: ReceiverTokens, provider: str
) -> Callable[[str], bool]:
    """Whether a URL is this service's receiver for one of `provider`'s jobs: under our public
    URL, with a token we signed for that provider."""

    def check(url: str) -> bool:
        if public_url is None:
            return False
        token = url.removeprefix(f"{public_url}/hooks/{provider}/")
        if token == url or not token or any(char in token for char in "/?#"):
            return False
        try:
            return tokens.verify(token).provider == provider
        except InvalidToken:
            return False

    return check


async def _stored_secret_key(store: Store) -> str:
    generated = store.cipher.seal(secrets.token_urlsafe(32))
    return store.cipher.open(await store.meta_get_or_set("secret_key", generated))


@asynccontextmanager
async def running(settings: Settings, self_url: str | None = None) -> AsyncIterator[Context]:
    store = await open_database(settings)
    try:
        secret_keys = list(settings.secret_keys) or [await _stored_secret_key(store)]
        own_url = self_url or settings.public_url or "http://127.0.0.1:8000"
        tokens = ReceiverTokens(secret_keys)
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.provider_timeout, connect=min(5.0, settings.provider_timeout)
            ),
            headers={"user-agent": f"videohooks/{__version__}"},
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
                # Its credential, unless configured, is derived from the secret key like its
                # webhook secret, so web and worker processes agree without configuration;
                # every listed secret key's is accepted while the keys rotate.
                api_keys = (
                    [config.api_key]
                    if config.api_key
                    else [_derived(key, "simulator-api") for key in secret_keys]
                )
                config = replace(
                    config,
                    base_url=config.base_url or f"{own_url}/simulator",
                    api_key=api_keys[0],
                    webhook_secret=config.webhook_secret
                    or "whsec_" + _derived(secret_keys[0], "simulator-webhooks"),
                )
                simulator = SimulatorServer(
                    api_keys=api_keys,
                    webhook_secret=config.webhook_secret,
                    public_base_url=f"{settings.public_url or own_url}/simulator",
                    own_receiver=own_receiver(settings.public_url, tokens, "simulator"),
                )
            providers[name] = handler_class(name)(config, http)
            providers[name].egress = egress
        session = open_session(settings, policy)
        context = Context(
            settings=settings,
            store=store,
            providers=providers,
            tokens=tokens,
            callback_secrets=CallbackSecrets(store, settings.callback_secrets),
            url_policy=policy,
            http=http,
            egress=egress,
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
            await egress.aclose()
            await session.close()
    finally:
        await store.close()
