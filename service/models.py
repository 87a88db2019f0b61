"""The HTTP API's shapes: what requests must look like and what responses are."""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from handlers import implemented
from handlers.base import CONTENT_URL_PREFIX
from handlers.strictjson import MAX_DEPTH, MAX_NUMBER
from service.urls import URL_GRAMMAR
from storage.records import Attempt as AttemptRecord
from storage.records import Delivery as DeliveryRecord
from storage.records import Job
from storage.records import Subscription as SubscriptionRecord

EventType = Literal["video.completed", "video.failed"]
EVENT_TYPES: tuple[str, ...] = ("video.completed", "video.failed")
VideoStatus = Literal["queued", "in_progress", "completed", "failed"]
MAX_METADATA_KEYS = 16
_MODEL = re.compile("([a-z0-9_-]+)/[!-~]+")
# Unix seconds: up to the largest integer a double holds exactly.
MAX_UNIX_SECONDS = 2**53 - 1
MIN_RATE_LIMIT = 0.01
# No string may hold U+0000 (PostgreSQL stores none); the JSON reader refuses it everywhere
# (handlers/strictjson.py) and the OpenAPI document states it on every free-text field.
NO_NUL = "^[^\\u0000]*$"
URL_PATTERN = f"^{URL_GRAMMAR}$"
IMAGE_URL_PATTERN = f"^(?:data:[^\\u0000]*|{URL_GRAMMAR})$"
# Any JSON value within the reader's limits, for `input` (components/schemas/JsonValue).
JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE = {
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": JSON_VALUE_REF},
        {
            "type": "object",
            "additionalProperties": JSON_VALUE_REF,
            "propertyNames": {"pattern": NO_NUL},
        },
    ],
    "description": "any JSON value: no U+0000 in strings, numbers within a double, nesting at"
    f" most {MAX_DEPTH} levels",
}

T = TypeVar("T")


# Read once: implemented() looks for every provider's module, which a request must not repeat.
_IMPLEMENTED = implemented()


def _model_id(value: str) -> str:
    match = _MODEL.fullmatch(value)
    if match is None:
        raise ValueError("must be provider/model, e.g. simulator/default or nanogpt/veo3")
    provider = match.group(1)
    if provider not in _IMPLEMENTED:
        raise ValueError(f"unknown provider {provider!r}; known: {', '.join(_IMPLEMENTED)}")
    return value


# The pattern tells clients (and the OpenAPI document) which providers exist; the validator gives
# the readable error.
ModelId = Annotated[
    str,
    Field(max_length=200, json_schema_extra={"pattern": f"^({'|'.join(_IMPLEMENTED)})/[!-~]+$"}),
    AfterValidator(_model_id),
]


def _text(max_length: int, **constraints: Any) -> Any:
    return Field(max_length=max_length, json_schema_extra={"pattern": NO_NUL}, **constraints)


ShortText = Annotated[str, _text(200)]


class Strict(BaseModel):
    """Request bodies: unknown fields are errors, and values must have their JSON type (no true
    taken for 1, no "5" for 5)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        """JSON has one number type, and JSON Schema calls 1227.0 an integer: so does the API
        (a float field takes the int back as the same number)."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class CreateVideo(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "simulator/default",
                    "prompt": "a red fox running through snow, golden hour",
                    "duration": 8,
                    "metadata": {"user_id": "42"},
                }
            ]
        }
    )

    model: ModelId
    prompt: Annotated[str, _text(20_000)] | None = None
    negative_prompt: Annotated[str, _text(20_000)] | None = None
    duration: float | None = Field(default=None, gt=0, le=3600)
    resolution: ShortText | None = None
    aspect_ratio: ShortText | None = None
    size: ShortText | None = None
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    image_url: str | None = Field(
        default=None,
        max_length=900_000,
        description="an http(s) URL (held to the egress policy) or a data: URL",
        json_schema_extra={"pattern": IMAGE_URL_PATTERN},
    )
    input: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={
            "additionalProperties": JSON_VALUE_REF,
            "propertyNames": {"pattern": NO_NUL},
        },
    )
    fallback_models: list[ModelId] = Field(default_factory=list, max_length=5)
    callback_url: str | None = Field(
        default=None,
        max_length=2000,
        description="https, resolving to public addresses (http and private addresses only with"
        " VIDEOHOOKS_ALLOW_PRIVATE_URLS)",
        json_schema_extra={"pattern": URL_PATTERN},
    )
    # Key rules go in propertyNames: pydantic would state a key pattern as patternProperties,
    # which lets every other key through.
    metadata: dict[
        Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, _text(500)]
    ] = Field(
        default_factory=dict,
        max_length=MAX_METADATA_KEYS,
        json_schema_extra={"propertyNames": {"minLength": 1, "maxLength": 40, "pattern": NO_NUL}},
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        for key in value:
            if not 0 < len(key) <= 40:
                raise ValueError("keys must be 1 to 40 characters")
        return value

    @field_validator("image_url")
    @classmethod
    def _image_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://", "data:")):
            raise ValueError("must be an http(s) URL or a data: URL")
        return value

    def provider(self) -> str:
        return self.model.split("/", 1)[0]


class Output(BaseModel):
    url: str
    content_type: str


class VideoError(BaseModel):
    code: str
    message: str


class Attempt(BaseModel):
    provider: str
    model: str
    provider_job_id: str | None = None
    error: VideoError | None = None


class Video(BaseModel):
    id: str
    object: Literal["video"] = "video"
    status: VideoStatus
    model: str
    provider: str
    provider_job_id: str | None
    progress: int = Field(ge=0, le=100)
    outputs: list[Output]
    error: VideoError | None
    metadata: dict[str, str]
    callback_url: str | None
    attempts: list[Attempt]
    created_at: int
    updated_at: int
    completed_at: int | None

    @classmethod
    def from_job(cls, job: Job, public_url: str | None) -> Video:
        """The job as the API shows it. Outputs only the provider can serve point at our
        content endpoint (absolute when VIDEOHOOKS_PUBLIC_URL is set)."""
        outputs = [
            Output(
                url=_content_url(job.id, output["url"], public_url),
                content_type=output["content_type"],
            )
            for output in job.outputs
        ]
        return cls(
            id=job.id,
            status=job.status,  # type: ignore[arg-type]
            model=job.model,
            provider=job.provider,
            provider_job_id=job.provider_job_id,
            progress=job.progress,
            outputs=outputs,
            error=None if job.error is None else VideoError.model_validate(job.error),
            metadata=job.metadata,
            callback_url=job.callback_url,
            attempts=[Attempt.model_validate(attempt) for attempt in job.attempts],
            created_at=int(job.created_at),
            updated_at=int(job.updated_at),
            completed_at=None if job.completed_at is None else int(job.completed_at),
        )


def _content_url(video_id: str, url: str, public_url: str | None) -> str:
    if not url.startswith(CONTENT_URL_PREFIX):
        return url
    index = url.removeprefix(CONTENT_URL_PREFIX)
    return f"{public_url or ''}/v1/videos/{video_id}/content?output={index}"


class EventOut(BaseModel):
    id: str
    object: Literal["event"] = "event"
    type: EventType
    created_at: int
    data: Video


_FILTER_PATH = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")

# Exact matches on event fields by dot path, e.g. {"data.metadata.user_id": "42"}: every entry
# must match. A non-string field matches the JSON text of its value ("data.progress": "100").
Filter = Annotated[
    dict[
        Annotated[str, Field(max_length=200, pattern=_FILTER_PATH.pattern)],
        Annotated[str, _text(500)],
    ],
    Field(
        max_length=16,
        json_schema_extra={"propertyNames": {"maxLength": 200, "pattern": _FILTER_PATH.pattern}},
    ),
]


def _check_filter(value: dict[str, str] | None) -> dict[str, str] | None:
    for path in value or {}:
        if not _FILTER_PATH.match(path):
            raise ValueError(f"{path!r} is not a dot path like data.metadata.user_id")
    return value


class SubscriptionFields(Strict):
    description: Annotated[str, _text(500)] | None = None
    filter: Filter | None = None
    max_in_flight: int | None = Field(default=None, ge=1, le=1000)
    # Deliveries per second; at least one per 100 s, so that 1/rate stays a sane interval.
    rate_limit: float | None = Field(default=None, ge=MIN_RATE_LIMIT, le=10_000)

    @field_validator("filter")
    @classmethod
    def _filter_paths(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_filter(value)


SUBSCRIBER_URL_DESCRIPTION = (
    "https, resolving to public addresses (http and private addresses only with"
    " VIDEOHOOKS_ALLOW_PRIVATE_URLS)"
)


class CreateSubscription(SubscriptionFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"url": "https://example.com/webhooks", "events": ["video.completed"]}]
        }
    )

    url: str = Field(
        max_length=2000,
        description=SUBSCRIBER_URL_DESCRIPTION,
        json_schema_extra={"pattern": URL_PATTERN},
    )
    events: list[EventType] = Field(default_factory=lambda: list(EVENT_TYPES), min_length=1)

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def _unset(schema: dict[str, Any], **extra: Any) -> None:
    """A field that may be left out but never be null: its schema states no (null) default."""
    schema.pop("default", None)
    schema.update(extra)


class UpdateSubscription(SubscriptionFields):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"rate_limit": 5, "status": "active"}]}
    )

    # Optional but never null: SkipJsonSchema keeps null out of the document (and _unset its
    # default, which no string is), the validator out of the request.
    url: str | SkipJsonSchema[None] = Field(
        default=None,
        max_length=2000,
        description=SUBSCRIBER_URL_DESCRIPTION,
        json_schema_extra=lambda schema: _unset(schema, pattern=URL_PATTERN),
    )
    events: Annotated[list[EventType], Field(min_length=1)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=lambda schema: _unset(schema)
    )
    status: Literal["active", "disabled"] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=lambda schema: _unset(schema)
    )

    @field_validator("url", "events", "status", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


class SubscriptionOut(BaseModel):
    id: str
    object: Literal["subscription"] = "subscription"
    url: str
    events: list[EventType]
    description: str | None
    status: Literal["active", "disabled"]
    disabled_reason: str | None
    filter: dict[str, str] | None
    max_in_flight: int | None
    rate_limit: float | None
    previous_secret_expires_at: int | None
    created_at: int
    updated_at: int

    @classmethod
    def from_record(cls, record: SubscriptionRecord) -> Self:
        expires = record.previous_secret_expires_at
        return cls.model_validate(
            record.model_dump()
            | {
                "created_at": int(record.created_at),
                "updated_at": int(record.updated_at),
                "previous_secret_expires_at": None if expires is None else int(expires),
            }
        )


HookEvent = Literal["video.completed", "video.failed", "*"]


class CreateHook(Strict):
    target_url: str = Field(
        max_length=2000,
        description=f"where the events are POSTed; {SUBSCRIBER_URL_DESCRIPTION}",
        json_schema_extra={"pattern": URL_PATTERN},
    )
    event: HookEvent = Field(description="the event type to send, or * for every type")


class HookOut(BaseModel):
    """A REST hook (the Zapier convention): removed when its target answers 410 Gone."""

    id: str
    object: Literal["hook"] = "hook"
    target_url: str
    event: HookEvent
    status: Literal["active", "disabled"]
    disabled_reason: str | None
    created_at: int

    @classmethod
    def from_record(cls, record: SubscriptionRecord) -> HookOut:
        return cls(
            id=record.id,
            target_url=record.url,
            event=record.events[0],  # type: ignore[arg-type]
            status=record.status,  # type: ignore[arg-type]
            disabled_reason=record.disabled_reason,
            created_at=int(record.created_at),
        )


class CreatedHook(HookOut):
    secret: str = Field(description="whsec_… signing this hook's deliveries; shown only here")


class SubscriptionWithSecret(SubscriptionOut):
    """A subscription as created or rotated: the only answers that carry its secret, besides
    GET /v1/subscriptions/{id}/secret."""

    secret: str


class SubscriptionSecretOut(BaseModel):
    object: Literal["subscription_secret"] = "subscription_secret"
    subscription_id: str
    secret: str = Field(description="Signs every delivery (whsec_…)")
    previous_secret_expires_at: int | None = Field(
        description="Until then, deliveries carry a signature by the previous secret too"
    )

    @classmethod
    def from_record(cls, record: SubscriptionRecord) -> SubscriptionSecretOut:
        expires = record.previous_secret_expires_at
        return cls(
            subscription_id=record.id,
            secret=record.secret,
            previous_secret_expires_at=None if expires is None else int(expires),
        )


class Recover(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"since": 1767225600}]})

    since: int = Field(
        ge=0, le=MAX_UNIX_SECONDS, description="Unix seconds: deliveries created at or after"
    )
    until: int | None = Field(
        default=None, ge=0, le=MAX_UNIX_SECONDS, description="Unix seconds: created before"
    )


class Redeliver(Strict):
    subscription_id: Annotated[str, _text(100)] | None = Field(
        default=None,
        description="only this subscription or hook (default: every target the event had)",
    )


class Queued(BaseModel):
    object: Literal["queued"] = "queued"
    queued: int
    has_more: bool = False


class AttemptOut(BaseModel):
    attempted_at: int
    status_code: int | None
    duration_ms: float
    error: str | None
    error_class: str | None
    response_body: str | None


class TestEventData(BaseModel):
    subscription_id: str
    message: str


class TestEventOut(BaseModel):
    """The `webhook.test` ping: signed and sent like any event, but not stored."""

    id: str
    object: Literal["event"] = "event"
    type: Literal["webhook.test"] = "webhook.test"
    created_at: int
    data: TestEventData


class TestDelivery(BaseModel):
    object: Literal["test_delivery"] = "test_delivery"
    succeeded: bool
    event: TestEventOut
    attempt: AttemptOut


class CallbackSecretOut(BaseModel):
    object: Literal["callback_secret"] = "callback_secret"
    secrets: list[str] = Field(description="The secrets signing callback deliveries, newest first")


class Deleted(BaseModel):
    id: str
    object: str
    deleted: Literal[True] = True


class DeliveryOut(BaseModel):
    id: str
    object: Literal["delivery"] = "delivery"
    event_id: str
    subscription_id: str | None
    url: str
    status: Literal["pending", "succeeded", "failed", "skipped", "cancelled"]
    attempt_count: int
    next_attempt_at: int | None
    last_status_code: int | None
    last_error: str | None
    created_at: int
    delivered_at: int | None
    attempts: list[AttemptOut]

    @classmethod
    def from_record(cls, record: DeliveryRecord, attempts: list[AttemptRecord]) -> DeliveryOut:
        data = record.model_dump()
        for key in ("next_attempt_at", "created_at", "delivered_at"):
            data[key] = None if data[key] is None else int(data[key])
        data["attempts"] = [
            attempt.model_dump() | {"attempted_at": int(attempt.attempted_at)}
            for attempt in attempts
        ]
        return cls.model_validate(data)


class ListOf(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    next_cursor: str | None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody
