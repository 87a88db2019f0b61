"""Errors a user can see, each with a stable code and HTTP status, rendered in one shape:
{"error": {"code", "message", "details"}}.

    ApiError
    ├── InvalidJson           400 invalid_json
    ├── Unauthorized          401 unauthorized
    ├── NotFound              404 not_found
    ├── IdempotencyConflict   409 idempotency_conflict
    ├── SubscriptionDisabled  409 subscription_disabled (enable it before recovering or replaying)
    ├── PayloadTooLarge       413 payload_too_large
    ├── InvalidRequest        422 invalid_request (details: [{"field", "message"}])
    ├── RateLimited           429 rate_limited
    ├── ProviderUnavailable   502 provider_unavailable (the provider could not serve a request)
    └── Unavailable           503 unavailable (the database is unreachable or busy; retry)
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, "details": self.details}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class InvalidJson(ApiError):
    status, code = 400, "invalid_json"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class NotFound(ApiError):
    status, code = 404, "not_found"


class IdempotencyConflict(ApiError):
    status, code = 409, "idempotency_conflict"


class SubscriptionDisabled(ApiError):
    status, code = 409, "subscription_disabled"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class InvalidRequest(ApiError):
    status, code = 422, "invalid_request"

    @classmethod
    def field(cls, field: str, message: str) -> InvalidRequest:
        return cls(f"{field}: {message}", details=[{"field": field, "message": message}])

    @classmethod
    def from_validation(cls, exc: ValidationError) -> InvalidRequest:
        details = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "body",
                "message": error["msg"],
            }
            for error in exc.errors(include_url=False)
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
        return cls(f"invalid request: {summary}", details=details)


class RateLimited(ApiError):
    status, code = 429, "rate_limited"


class ProviderUnavailable(ApiError):
    status, code = 502, "provider_unavailable"


class Unavailable(ApiError):
    status, code = 503, "unavailable"
