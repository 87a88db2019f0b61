"""Provider handlers: one module per provider, each exposing one class named `Handler`."""

from __future__ import annotations

import importlib
import importlib.util

from handlers.base import Provider, ProviderConfig

# Every provider name of the contract; a name has a handler when handlers/<name>.py exists.
PROVIDER_NAMES: tuple[str, ...] = (
    "simulator",
    "bifrost",
    "nanogpt",
    "apifree",
    "hedra",
    "openrouter",
    "openai",
    "replicate",
    "fal",
    "runway",
    "veo",
    "luma",
    "kling",
    "minimax",
    "seedance",
)


def implemented() -> tuple[str, ...]:
    return tuple(name for name in PROVIDER_NAMES if importlib.util.find_spec(f"handlers.{name}"))


def handler_class(name: str) -> type[Provider]:
    if name not in PROVIDER_NAMES:
        raise KeyError(name)
    return importlib.import_module(f"handlers.{name}").Handler  # type: ignore[no-any-return]


__all__ = ["PROVIDER_NAMES", "Provider", "ProviderConfig", "handler_class", "implemented"]
