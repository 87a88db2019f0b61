"""/v1/callback-secret: the secrets that sign deliveries to jobs' callback URLs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.api.common import context, json_response
from service.callbacks import CallbackSecretsFromEnvironment
from service.errors import ApiError
from service.models import CallbackSecretOut


class ConfiguredByEnvironment(ApiError):
    status, code = 409, "configured_by_environment"


async def retrieve(request: Request) -> Response:
    return json_response(CallbackSecretOut(secrets=await context(request).callback_secrets.load()))


async def rotate(request: Request) -> Response:
    """A new secret signs from now on; the old one too for VIDEOHOOKS_SECRET_GRACE."""
    ctx = context(request)
    try:
        await ctx.callback_secrets.rotate(ctx.settings.secret_grace)
    except CallbackSecretsFromEnvironment as exc:
        raise ConfiguredByEnvironment(str(exc)) from None
    return json_response(CallbackSecretOut(secrets=await ctx.callback_secrets.load()))
