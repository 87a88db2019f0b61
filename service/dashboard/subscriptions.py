"""The dashboard's subscription and hook pages: list, create, edit (subscriptions), enable/disable,
rotate the secret (shown once), send a test event, recover failed deliveries since a time,
delete. Each form is turned into the API's own request model and handed to the operation the API
endpoint calls (service/operations.py), so the rules - validation, the URL policy - are the
API's. Hooks (the Zapier convention) are subscription rows of kind "hook": the same page serves
both."""

from __future__ import annotations

import calendar
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.datastructures import MultiDict
from starlette.requests import Request
from starlette.responses import Response

from service import operations
from service.api.common import validate
from service.errors import ApiError
from service.models import (
    EVENT_TYPES,
    CreateHook,
    CreateSubscription,
    Recover,
    UpdateSubscription,
)
from storage.records import Subscription

if TYPE_CHECKING:
    from service.dashboard.routes import Dashboard

PAGE = 50


def subscription_fields(form: MultiDict) -> dict[str, Any]:
    """The create/edit form as the API's JSON body: blank optional fields are unset (create) or
    cleared (edit); numbers are converted where they read as numbers, and left as text for the
    model to refuse with its own message where they do not."""
    filters: dict[str, str] = {}
    for line in str(form.get("filter", "")).splitlines():
        if line.strip():
            path, _, value = line.partition("=")
            filters[path.strip()] = value.strip()
    return {
        "url": str(form.get("url", "")).strip(),
        "events": [str(event) for event in form.getlist("events")],
        "description": str(form.get("description", "")).strip() or None,
        "filter": filters or None,
        "rate_limit": _number(form.get("rate_limit"), float),
        "max_in_flight": _number(form.get("max_in_flight"), int),
    }


def _number(raw: Any, kind: type[float] | type[int]) -> Any:
    text = str(raw or "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        return text


def since_seconds(raw: str) -> int | str:
    """A datetime-local value (read as UTC) as Unix seconds; the text itself when it is not one,
    for the Recover model to refuse."""
    for layout in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return calendar.timegm(time.strptime(raw.strip(), layout))
        except ValueError:
            continue
    return raw


def errors_of(exc: ApiError) -> dict[str, str]:
    """The API error's bad fields by name (the form shows each beside its field)."""
    details = exc.details if isinstance(exc.details, list) else []
    found = {
        str(item.get("field", "")).split(".")[0]: str(item.get("message", ""))
        for item in details
        if isinstance(item, dict)
    }
    return found or {"form": exc.message}


class SubscriptionPages:
    """Bound to the Dashboard for rendering, redirects and the store."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.context = dashboard.context

    async def list_(self, request: Request) -> Response:
        status = request.query_params.get("status") or None
        if status not in (None, "active", "disabled"):
            status = None
        values = await self._lists(request, status) | {
            "form": {"events": list(EVENT_TYPES)},
            "hook_form": {"event": "*"},
            "errors": {},
        }
        return self.dashboard.render(request, "subscriptions.html", values)

    async def _lists(self, request: Request, status: str | None) -> dict[str, Any]:
        """A page of subscriptions and one of hooks, each with its own cursor."""
        values: dict[str, Any] = {"status": status, "event_types": EVENT_TYPES}
        for kind, cursor in ((operations.SUBSCRIPTION, "after"), (operations.HOOK, "hooks_after")):
            after = request.query_params.get(cursor) or None
            page = await self.context.store.list_subscriptions(
                PAGE, after, kind=kind, status=status
            )
            kept = {"status": status} if status else {}
            values[kind] = {
                "page": page,
                "next_url": "/subscriptions?" + urlencode(kept | {cursor: page.items[-1].id})
                if page.has_more and page.items
                else None,
                "first_url": "/subscriptions?" + urlencode(kept) if after else None,
            }
        return values

    async def create(self, request: Request) -> Response:
        fields = subscription_fields(request.state.form)
        try:
            given = {key: value for key, value in fields.items() if value is not None}
            body = validate(CreateSubscription, given)
            created = await operations.create_subscription(self.context, body)
        except ApiError as exc:
            values = await self._lists(request, None) | {
                "form": fields,
                "hook_form": {"event": "*"},
                "errors": errors_of(exc),
            }
            return self.dashboard.render(request, "subscriptions.html", values, status_code=422)
        return await self._show(request, created, secret=created.secret, status_code=201)

    async def create_hook(self, request: Request) -> Response:
        form = request.state.form
        fields = {
            "target_url": str(form.get("target_url", "")).strip(),
            "event": str(form.get("event", "")),
        }
        try:
            created = await operations.create_hook(self.context, validate(CreateHook, fields))
        except ApiError as exc:
            errors = {f"hook_{name}": message for name, message in errors_of(exc).items()}
            values = await self._lists(request, None) | {
                "form": {"events": list(EVENT_TYPES)},
                "hook_form": fields,
                "errors": errors,
            }
            return self.dashboard.render(request, "subscriptions.html", values, status_code=422)
        return await self._show(request, created, secret=created.secret, status_code=201)

    async def show(self, request: Request) -> Response:
        found = await self.context.store.get_subscription(request.path_params["subscription_id"])
        if found is None:
            return self._missing(request)
        return await self._show(request, found)

    async def _show(
        self,
        request: Request,
        subscription: Subscription,
        secret: str | None = None,
        errors: dict[str, str] | None = None,
        form: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> Response:
        values = {
            "subscription": subscription,
            # Shown once: only on the answer to the create or rotate that made it.
            "secret": secret,
            "errors": errors or {},
            "form": form or _as_form(subscription),
            "event_types": EVENT_TYPES,
            "since_default": time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 86400)),
        } | await self.dashboard.delivery_rows(request, subscription.id)
        return self.dashboard.render(request, "subscription.html", values, status_code)

    async def edit(self, request: Request) -> Response:
        subscription_id = request.path_params["subscription_id"]
        fields = subscription_fields(request.state.form)
        try:
            body = validate(UpdateSubscription, fields)
            updated = await operations.update_subscription(
                self.context, subscription_id, body, kind=operations.SUBSCRIPTION
            )
        except ApiError as exc:
            return await self._refused(request, subscription_id, exc, fields)
        return self.dashboard.redirect(request, _path(updated), "Saved.")

    async def set_status(self, request: Request) -> Response:
        subscription_id = request.path_params["subscription_id"]
        status = str(request.state.form.get("status", ""))
        try:
            body = validate(UpdateSubscription, {"status": status})
            updated = await operations.update_subscription(
                self.context, subscription_id, body, kind=None
            )
        except ApiError as exc:
            return await self._refused(request, subscription_id, exc)
        word = "Enabled" if updated.status == "active" else "Disabled"
        return self.dashboard.redirect(request, _path(updated), f"{word}.")

    async def rotate(self, request: Request) -> Response:
        try:
            rotated = await operations.rotate_secret(
                self.context, request.path_params["subscription_id"], kind=None
            )
        except ApiError as exc:
            return await self._refused(request, request.path_params["subscription_id"], exc)
        return await self._show(request, rotated, secret=rotated.secret)

    async def test(self, request: Request) -> Response:
        subscription_id = request.path_params["subscription_id"]
        try:
            result = await operations.send_test(self.context, subscription_id, kind=None)
        except ApiError as exc:
            return await self._refused(request, subscription_id, exc)
        attempt = result.attempt
        answer = f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error
        text = (
            f"Test event {'delivered' if result.succeeded else 'NOT delivered'}: {answer} "
            f"in {attempt.duration_ms:.0f} ms."
        )
        if attempt.response_body:
            text += f" The receiver answered: {attempt.response_body[:200]}"
        path = f"/subscriptions/{subscription_id}"
        return self.dashboard.redirect(request, path, text, ok=result.succeeded)

    async def recover(self, request: Request) -> Response:
        subscription_id = request.path_params["subscription_id"]
        since = since_seconds(str(request.state.form.get("since", "")))
        try:
            queued = await operations.recover(
                self.context, subscription_id, validate(Recover, {"since": since}), kind=None
            )
        except ApiError as exc:
            return await self._refused(request, subscription_id, exc)
        text = f"Queued {queued.queued} failed or skipped deliveries again."
        if queued.has_more:
            text += " There are more: recover again."
        return self.dashboard.redirect(request, f"/subscriptions/{subscription_id}", text)

    async def delete(self, request: Request) -> Response:
        subscription_id = request.path_params["subscription_id"]
        try:
            await operations.delete_subscription(self.context, subscription_id, kind=None)
        except ApiError as exc:
            return await self._refused(request, subscription_id, exc)
        return self.dashboard.redirect(request, "/subscriptions", f"Deleted {subscription_id}.")

    async def _refused(
        self,
        request: Request,
        subscription_id: str,
        exc: ApiError,
        form: dict[str, Any] | None = None,
    ) -> Response:
        found = await self.context.store.get_subscription(subscription_id)
        if found is None:
            return self._missing(request)
        status_code = exc.status
        return await self._show(request, found, None, errors_of(exc), form, status_code)

    def _missing(self, request: Request) -> Response:
        return self.dashboard.render(
            request, "not_found.html", {"what": "subscription"}, status_code=404
        )


def _path(subscription: Subscription) -> str:
    return f"/subscriptions/{subscription.id}"


def _as_form(subscription: Subscription) -> dict[str, Any]:
    fields = subscription.model_dump(
        include={"url", "events", "description", "rate_limit", "max_in_flight"}
    )
    fields["filter"] = subscription.filter
    return fields
