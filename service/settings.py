"""Configuration from the environment, validated once at start.

Every variable is optional. A bad value raises `ConfigError` naming the variable, which the CLI
prints as one line before exiting with status 2. Parsing is hand-written rather than
pydantic-settings so that each error is exactly one readable line naming one variable.

The variables videohooks knows are the ones read here, plus each handler's declared
`option_names`; any other VIDEOHOOKS_* variable (a typo, say) is named in `Settings.warnings`,
which the CLI logs at start.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from handlers import PROVIDER_NAMES, handler_class, implemented
from handlers.base import ProviderConfig

PREFIX = "VIDEOHOOKS_"
DEFAULT_RETRY_SCHEDULE = "5s,5m,30m,2h,5h,10h,10h"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


class ConfigError(Exception):
    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./videohooks.db"
    public_url: str | None = None
    api_keys: tuple[str, ...] = ()
    secret_keys: tuple[str, ...] = ()
    # AES-256 keys for secrets at rest, newest first (service/encryption.py).
    encryption_keys: tuple[bytes, ...] = ()
    callback_secrets: tuple[str, ...] = ()
    retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    allow_private_urls: bool = False
    allowed_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    simulator: bool = True
    delivery_timeout: float = 15.0
    delivery_concurrency: int = 256
    subscription_concurrency: int = 10
    job_timeout: float = 86400.0
    webhook_grace: float = 60.0
    poll_min: float = 2.0
    poll_max: float = 60.0
    provider_concurrency: int = 8
    provider_timeout: float = 30.0
    # How long a submission that may have reached its provider unanswered is reconciled before
    # the job fails with `submission_uncertain` (or, opted in, is sent again).
    submit_reconcile: float = 600.0
    resubmit_uncertain: bool = False
    idle_poll: float = 0.5
    # How many processes `serve`, `web` and `worker` run their work in (service/supervisor.py).
    processes: int = field(default_factory=lambda: available_cores())
    drain_timeout: float = 30.0
    disable_after: float = 5 * 86400.0
    retention: float = 30 * 86400.0
    cleanup_interval: float = 3600.0
    secret_grace: float = 86400.0
    metrics_listen: tuple[str, int] | None = None
    log_level: str = "INFO"
    log_format: str = "auto"
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    # One line for each VIDEOHOOKS_* variable set that videohooks does not read.
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        settings = cls(
            database_url=env.database_url("DATABASE_URL", cls.database_url),
            public_url=env.url("PUBLIC_URL"),
            api_keys=env.csv("API_KEYS"),
            secret_keys=env.csv("SECRET_KEY"),
            encryption_keys=env.encryption_keys("ENCRYPTION_KEY"),
            callback_secrets=env.whsec_list("CALLBACK_SECRET"),
            retry_schedule=env.schedule("RETRY_SCHEDULE", DEFAULT_RETRY_SCHEDULE),
            allow_private_urls=env.flag("ALLOW_PRIVATE_URLS", False),
            allowed_cidrs=env.cidrs("ALLOWED_CIDRS"),
            simulator=env.flag("SIMULATOR", True),
            delivery_timeout=env.duration("DELIVERY_TIMEOUT", cls.delivery_timeout, minimum=0.05),
            delivery_concurrency=env.integer("DELIVERY_CONCURRENCY", cls.delivery_concurrency),
            subscription_concurrency=env.integer(
                "SUBSCRIPTION_CONCURRENCY", cls.subscription_concurrency
            ),
            job_timeout=env.duration("JOB_TIMEOUT", cls.job_timeout, minimum=1),
            webhook_grace=env.duration("WEBHOOK_GRACE", cls.webhook_grace),
            poll_min=env.duration("POLL_MIN", cls.poll_min, minimum=0.01),
            poll_max=env.duration("POLL_MAX", cls.poll_max, minimum=0.01),
            provider_concurrency=env.integer("PROVIDER_CONCURRENCY", cls.provider_concurrency),
            provider_timeout=env.duration("PROVIDER_TIMEOUT", cls.provider_timeout, minimum=0.05),
            submit_reconcile=env.duration("SUBMIT_RECONCILE", cls.submit_reconcile),
            resubmit_uncertain=env.flag("RESUBMIT_UNCERTAIN", False),
            idle_poll=env.duration("IDLE_POLL", cls.idle_poll, minimum=0.01),
            processes=env.integer("PROCESSES", available_cores()),
            drain_timeout=env.duration("DRAIN_TIMEOUT", cls.drain_timeout),
            disable_after=env.duration("DISABLE_AFTER", cls.disable_after, minimum=0.05),
            retention=env.days("RETENTION_DAYS", cls.retention),
            cleanup_interval=env.duration("CLEANUP_INTERVAL", cls.cleanup_interval, minimum=0.05),
            secret_grace=env.duration("SECRET_GRACE", cls.secret_grace),
            metrics_listen=env.address("METRICS_LISTEN"),
            log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=env.choice("LOG_FORMAT", "auto", ("auto", "json", "text")),
            providers={name: env.provider(name) for name in PROVIDER_NAMES},
        )
        if settings.poll_min > settings.poll_max:
            raise env.fail(
                "POLL_MIN",
                f"{settings.poll_min:g}s is above VIDEOHOOKS_POLL_MAX ({settings.poll_max:g}s)",
            )
        return replace(settings, warnings=env.unknown())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:")


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _close(name: str, known: set[str]) -> list[str]:
    return difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)


def parse_duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a duration (use e.g. 500ms, 30s, 5m, 2h)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        # Every variable asked for: what is known, whether set or not.
        self.known: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.known.add(PREFIX + name)
        value = self.environ.get(PREFIX + name)
        return value.strip() if value is not None and value.strip() else None

    def fail(self, name: str, message: str) -> ConfigError:
        return ConfigError(PREFIX + name, message)

    def csv(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        return tuple(part.strip() for part in value.split(",") if part.strip()) if value else ()

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise self.fail(name, f"{value!r} is not a boolean (use true or false)")

    def duration(self, name: str, default: float, minimum: float = 0.0) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None
        if seconds < minimum:
            raise self.fail(name, f"{value!r} is below the minimum of {minimum:g}s")
        return seconds

    def days(self, name: str, default: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            days = float(value)
        except ValueError:
            raise self.fail(name, f"{value!r} is not a number of days") from None
        if not 0 < days < 1e6:  # NaN and infinity too
            raise self.fail(name, f"{value!r} must be more than 0 and less than 1,000,000")
        return days * 86400

    def address(self, name: str) -> tuple[str, int] | None:
        value = self.raw(name)
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise self.fail(name, f"{value!r} is not host:port (e.g. 0.0.0.0:9100)")
        return host.strip("[]"), int(port)

    def integer(self, name: str, default: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            raise self.fail(name, f"{value!r} is not a positive whole number")
        return int(value)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise self.fail(name, f"{value!r} is not one of {', '.join(choices)}")

    def schedule(self, name: str, default: str) -> tuple[float, ...]:
        value = self.raw(name) or default
        try:
            return tuple(parse_duration(part) for part in value.split(","))
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None

    def url(self, name: str, value: str | None = None) -> str | None:
        value = value or self.raw(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail(name, f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    def database_url(self, name: str, default: str) -> str:
        value = self.raw(name) or default
        if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
            return value
        if value.startswith(("postgresql://", "postgres://")):
            return value
        raise self.fail(name, f"{value!r} is not sqlite:///path or postgresql://user@host:port/db")

    def whsec_list(self, name: str) -> tuple[str, ...]:
        secrets = self.csv(name)
        for secret in secrets:
            if not secret.startswith("whsec_") or len(secret) < 20:
                raise self.fail(name, "each secret must look like whsec_<base64, 24+ bytes>")
        return secrets

    def encryption_keys(self, name: str) -> tuple[bytes, ...]:
        keys = []
        for part in self.csv(name):
            try:
                key = base64.b64decode(part, altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if len(key) != 32:
                raise self.fail(
                    name, "each key must be 32 bytes in base64 (make one: openssl rand -base64 32)"
                )
            keys.append(key)
        return tuple(keys)

    def cidrs(self, name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        try:
            return tuple(ipaddress.ip_network(part, strict=False) for part in self.csv(name))
        except ValueError as exc:
            raise self.fail(name, str(exc)) from None

    def unknown(self) -> tuple[str, ...]:
        return tuple(
            f"{name} is not a videohooks variable and is ignored"
            + "".join(f" (did you mean {match}?)" for match in _close(name, self.known))
            for name in sorted(self.environ)
            if name.startswith(PREFIX) and name not in self.known
        )

    def provider(self, provider: str) -> ProviderConfig:
        prefix = f"{provider.upper()}_"
        declared: tuple[str, ...] = ()
        if provider in implemented():
            handler = handler_class(provider)
            declared = (*handler.option_names, *handler.credentials)
        for name in ("API_KEY", "BASE_URL", "WEBHOOK_SECRET", *declared):
            self.known.add(PREFIX + prefix + name)
        options = {
            key[len(PREFIX) + len(prefix) :]: value
            for key, value in self.environ.items()
            if key.startswith(PREFIX + prefix) and value.strip()
        }
        return ProviderConfig(
            api_key=options.pop("API_KEY", None),
            base_url=self.url(prefix + "BASE_URL", options.pop("BASE_URL", None)),
            webhook_secret=options.pop("WEBHOOK_SECRET", None),
            options=options,
        )
