"""/v1/deliveries: find deliveries (failed ones to replay, skipped ones to recover), each with
its attempts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.api.common import (
    after_param,
    choice_param,
    context,
    int_param,
    limit_param,
    list_response,
)
from service.models import MAX_UNIX_SECONDS, DeliveryOut
from storage import Store
from storage.records import DELIVERY_STATUSES, Delivery, Page


async def list_(request: Request) -> Response:
    store = context(request).store
    page = await store.list_deliveries(
        status=choice_param(request, "status", DELIVERY_STATUSES),
        subscription_id=request.query_params.get("subscription_id"),
        since=since_param(request),
        limit=limit_param(request),
        after=await after_param(request, store.get_delivery, "delivery"),
    )
    return await render(store, page)


async def render(store: Store, page: Page[Delivery]) -> Response:
    attempts = await store.delivery_attempts([delivery.seq for delivery in page.items])
    return list_response(
        page.items,
        page.has_more,
        lambda delivery: DeliveryOut.from_record(
            delivery, attempts[delivery.seq]
        ).model_dump_json(),
        lambda delivery: delivery.id,
    )


def since_param(request: Request) -> float | None:
    if "since" not in request.query_params:
        return None
    return float(int_param(request, "since", 0, 0, MAX_UNIX_SECONDS))
