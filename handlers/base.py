"""The interface every provider handler implements, and the types it speaks.

Errors a handler raises (all subclasses of `ProviderError`):

    ProviderError
    ├── TransientError    retry later (connect error, timeout, 5xx, 429, malformed JSON)
    │   └── UncertainError    the request may have reached the provider, but no answer came
    │                         (a timeout after sending, a connection lost mid-answer, a 5xx):
    │                         a submission may have been accepted, and billed
    ├── PermanentError    the provider refused; this attempt has failed (other 4xx)
    └── WebhookRejected   a webhook failed its signature check; answer 401, change nothing

A handler never touches the database: it turns our normalized request into the provider's HTTP
call and the provider's answers (responses and webhooks) into `ProviderStatus`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import httpx2 as httpx
from pydantic import BaseModel, Field

log = logging.getLogger("videohooks.handlers")

Status = Literal["queued", "in_progress", "completed", "failed"]
# How a submission that may have reached the provider unanswered is resolved (`Provider`).
Reconciliation = Literal["idempotency_key", "lookup", "webhook", "none"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed"})


@dataclass(frozen=True)
class ProviderConfig:
    """A provider's settings, read from VIDEOHOOKS_<PROVIDER>_* by service/settings.py."""

    api_key: str | None = None
    base_url: str | None = None
    webhook_secret: str | None = None
    # Any other VIDEOHOOKS_<PROVIDER>_<NAME> variable, keyed by NAME (e.g. fal's JWKS_URL).
    options: Mapping[str, str] = field(default_factory=dict)


CONTENT_URL_PREFIX = "videohooks-content:"


class Output(BaseModel):
    url: str
    content_type: str = "video/mp4"

    @classmethod
    def via_content(cls, index: int = 0, content_type: str = "video/mp4") -> Output:
        """An output the provider serves only to authenticated callers (or inline as base64).
        videohooks serves it at GET /v1/videos/{id}/content?output=<index>, through the
        handler's `content()`; events carry that URL instead."""
        return cls(url=f"{CONTENT_URL_PREFIX}{index}", content_type=content_type)


@dataclass
class Content:
    content_type: str
    chunks: AsyncIterator[bytes]


class JobError(BaseModel):
    code: str
    message: str


class ProviderStatus(BaseModel):
    """One observation of a provider job, in our vocabulary."""

    provider_job_id: str
    status: Status
    progress: int | None = Field(default=None, ge=0, le=100)
    outputs: list[Output] = Field(default_factory=list)
    error: JobError | None = None
    # The provider's own word for the status, kept for logs and the status table.
    raw_status: str | None = None
    # The provider's estimate of seconds until done, when it gives one; it steers the next poll.
    eta_s: float | None = None
    # A verified webhook that names the job but is too thin to apply (e.g. OpenAI's): the
    # worker re-fetches the status instead of applying this report.
    refetch: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class SubmitRequest(BaseModel):
    """A job as handed to one provider: normalized fields plus `input` merged over them."""

    job_id: str
    model: str  # the provider's own model id, without our `provider/` prefix
    prompt: str | None = None
    negative_prompt: str | None = None
    duration: float | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    size: str | None = None
    seed: int | None = None
    image_url: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    # Our receiver URL for this job, when the provider takes a per-job callback.
    callback_url: str | None = None
    # The same on every submission of this job's attempt, and no other's: the idempotency key or
    # external reference a handler sends where its provider takes one, so that an uncertain
    # submission can be resolved (`Provider.reconciliation`).
    reference: str = ""

    def normalized(self, names: Mapping[str, str]) -> dict[str, Any]:
        """The normalized fields that are set, under the provider's names (a dotted name nests:
        "generated_video_inputs.text_prompt"), with `input` deep-merged over them."""
        body: dict[str, Any] = {}
        for key, value in self.model_dump(include=set(names)).items():
            if value is not None:
                *parents, leaf = names[key].split(".")
                target = body
                for parent in parents:
                    target = target.setdefault(parent, {})
                target[leaf] = value
        return deep_merge(body, self.input)


def names_job(provider_job_id: str, reported: str) -> bool:
    """Whether the job id a webhook body reports names our provider job: the same id, or the last
    part of a composite id a handler built (fal's "{app}/requests/{request_id}")."""
    return reported == provider_job_id or provider_job_id.endswith("/" + reported)


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` wins; nested objects are merged key by key rather than replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def normalize_status(provider: str, raw: str, table: Mapping[str, Status]) -> Status:
    """The provider's status word in our vocabulary, compared case-insensitively. A word the
    table does not know is logged and treated as in progress: never terminal on a guess."""
    status = table.get(raw.lower())
    if status is None:
        log.warning("unknown provider status", extra={"provider": provider, "raw_status": raw})
        return "in_progress"
    return status


def normalize_progress(value: float | None, scale: float = 100.0) -> int | None:
    """Progress on the provider's scale (1.0 or 100) as a whole percentage, clamped to 0-100."""
    if value is None:
        return None
    return max(0, min(100, round(value * 100 / scale)))


class ProviderError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientError(ProviderError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UncertainError(TransientError):
    pass


class PermanentError(ProviderError):
    def __init__(
        self, message: str, code: str = "provider_rejected", status: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        # The HTTP status of the refusal, when it was one (a lookup tells "none" by a 404).
        self.status = status


class WebhookRejected(ProviderError):
    pass


class Provider(Protocol):
    name: ClassVar[str]
    # True when the provider accepts a per-job callback URL and calls it on terminal states.
    webhooks: ClassVar[bool]
    # True when the provider sends signed webhooks for the whole account to one fixed URL
    # (OpenAI's project webhooks): they arrive at POST /hooks/{provider}, and the job is found by
    # the provider job id in the verified body.
    account_webhooks: ClassVar[bool]
    # How a submission that may have reached the provider unanswered (UncertainError) is
    # resolved, by what the provider documents:
    #   idempotency_key  submit() sends `request.reference` as the provider's idempotency key, so
    #                    sending the same submission again cannot create a second job;
    #   lookup           find_submission() finds the job submit() created, by the reference it
    #                    sent (an external id, metadata, or the receiver URL);
    #   webhook          only the provider's webhook to this attempt's receiver URL can tell;
    #   none             nothing can: the job fails with `submission_uncertain`.
    reconciliation: ClassVar[Reconciliation]
    # The VIDEOHOOKS_<PROVIDER>_<NAME> variables it reads from `ProviderConfig.options`.
    option_names: ClassVar[frozenset[str]]
    # The VIDEOHOOKS_<PROVIDER>_<NAME> variables that configure it (`configured`): what a message
    # that says how to configure it names, and known variables at start like `option_names`.
    credentials: ClassVar[tuple[str, ...]]
    # The client for URLs from a user or a provider's payload: the service's egress guard, set
    # by the service after construction (see `HttpProvider.egress`).
    egress: httpx.AsyncClient | None

    @property
    def configured(self) -> bool: ...

    @property
    def account_webhooks_expected(self) -> bool:
        """True when account webhooks can be verified here (their secret is set), so a job waits
        VIDEOHOOKS_WEBHOOK_GRACE for one before it is polled, as a per-job callback does."""
        ...

    async def submit(self, request: SubmitRequest) -> ProviderStatus: ...

    async def fetch_status(self, provider_job_id: str) -> ProviderStatus: ...

    async def find_submission(self, request: SubmitRequest) -> ProviderStatus | None:
        """For `reconciliation = "lookup"`: the provider job a submission of this request
        created (found by `request.reference`), or None when the provider has none."""
        ...

    def handshake(self, body: bytes) -> dict[str, Any] | None:
        """The answer to a request that only checks a callback URL before any report is sent to
        it (MiniMax's `challenge`), or None when the body is anything else. The receiver answers
        it at once with 200: it says nothing about the job."""
        ...

    def adopted_job_id(self, request: SubmitRequest, reported: str) -> str:
        """The provider job id to record for the job a webhook body names as `reported`, when
        the webhook arrived before the submission's answer (the id `submit` would have
        returned: fal's webhook names only the last part of its composite id)."""
        ...

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True when the body is proven to come from the provider (signature verified), False
        when the provider does not sign (the body is then only a reason to re-fetch). Raises
        `WebhookRejected` when a signature is present or required and does not verify."""
        ...

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        """The status a webhook body reports; raises `TransientError` when it cannot be read."""
        ...


class ContentProvider(Provider, Protocol):
    """A provider some of whose outputs are `Output.via_content`: it can fetch their bytes."""

    def content(self, provider_job_id: str, index: int) -> AbstractAsyncContextManager[Content]:
        """Opens the output's bytes as a stream; raises ProviderError when unavailable."""
        ...


class HttpProvider:
    """The parts most handlers share, as defaults a handler overrides: its settings from
    ProviderConfig, its API key in one header, and no webhooks (a callback to a provider that
    sends none is never trusted and has nothing to read)."""

    name: ClassVar[str]
    webhooks: ClassVar[bool] = False
    account_webhooks: ClassVar[bool] = False
    reconciliation: ClassVar[Reconciliation] = "none"
    default_base_url: ClassVar[str]
    auth_header: ClassVar[str] = "authorization"
    auth_scheme: ClassVar[str] = "Bearer "
    # The VIDEOHOOKS_<PROVIDER>_<NAME> variables the handler reads from `config.options`, beyond
    # API_KEY, BASE_URL and WEBHOOK_SECRET: any other is warned about at start as unknown.
    option_names: ClassVar[frozenset[str]] = frozenset()
    credentials: ClassVar[tuple[str, ...]] = ("API_KEY",)
    # `self.http` reaches the provider's API (its configured base URL). Any URL that comes from a
    # user or from the provider's payload (an image_url to upload, a file a payload points at) is
    # read with `handlers.http.fetch(self.egress, url)` instead: the egress guard the service sets
    # here. Left None (a handler built without the service), such fetches are refused.
    egress: httpx.AsyncClient | None = None

    def __init__(self, config: ProviderConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        self.api_key = config.api_key
        self.secret = config.webhook_secret
        self.http = http

    @property
    def configured(self) -> bool:
        return bool(self.api_key)

    @property
    def account_webhooks_expected(self) -> bool:
        return self.account_webhooks and self.secret is not None

    @property
    def headers(self) -> dict[str, str]:
        return {self.auth_header: f"{self.auth_scheme}{self.api_key or ''}"}

    async def find_submission(self, request: SubmitRequest) -> ProviderStatus | None:
        return None

    def handshake(self, body: bytes) -> dict[str, Any] | None:
        return None

    def adopted_job_id(self, request: SubmitRequest, reported: str) -> str:
        return reported

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        return False

    def parse_webhook(self, body: bytes) -> ProviderStatus:
        raise TransientError(f"{self.name} does not send webhooks")


def how_to_configure(provider: type[Provider] | Provider) -> str:
    """What to set so that a provider is configured, e.g. "VIDEOHOOKS_KLING_ACCESS_KEY and
    VIDEOHOOKS_KLING_SECRET_KEY"."""
    prefix = f"VIDEOHOOKS_{provider.name.upper()}_"
    return " and ".join(prefix + name for name in provider.credentials)
