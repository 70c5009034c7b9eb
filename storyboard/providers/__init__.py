"""The provider seam: one Protocol, a registry of built-ins plus entry points.

A provider turns a RenderJob into an MP4 at `dest`. Slow HTTP providers submit, poll and
download inside `render`, recording their operation id in `ctx.journal` the moment they get
it so a killed build resumes polling instead of paying twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from storyboard.errors import StoryboardError
from storyboard.job import Capabilities, Price, RenderContext, RenderJob, RenderResult

BUILTIN: dict[str, str] = {
    "animatic": "storyboard.providers.animatic:AnimaticProvider",
    "gemini": "storyboard.providers.gemini:GeminiProvider",
    "vertex": "storyboard.providers.vertex:VertexProvider",
    "apiframe": "storyboard.providers.apiframe:ApiframeProvider",
    "azerion": "storyboard.providers.azerion:AzerionProvider",
    "uniall": "storyboard.providers.uniall:UniAllProvider",
    "cometapi": "storyboard.providers.cometapi:CometApiProvider",
    "omni": "storyboard.providers.omni:OmniProvider",
}
ENTRY_POINT_GROUP = "storyboard.providers"


@dataclass(frozen=True, kw_only=True)
class ProviderSettings:
    """`[providers.NAME]`: settings every provider understands. Providers may extend it.

    A plain dataclass, so building a provider with its defaults never imports pydantic;
    storyboard.providers.settings validates a table against it (unknown keys refused). A
    provider's own settings subclass it with `@dataclass(frozen=True, kw_only=True)`.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    model: str | None = None
    base_url: str | None = None
    concurrency: int | None = None
    rpm: float | None = None
    poll_interval: float | None = None
    timeout: float | None = None
    allow_retired: bool = False
    """Use a model past its shutdown date (storyboard/lifecycle.py): for proxies that still serve it."""


class Provider(Protocol):
    """A video model behind one method.

    Attributes:
        name: the registry name (`provider = "..."` in a storyboard).
        default_model: the model used when the storyboard names none.
        key_env: environment variables holding the API key, first wins; empty for none.
        Settings: the dataclass of its `[providers.NAME]` table (a ProviderSettings).
    """

    name: str
    default_model: str
    key_env: tuple[str, ...]
    Settings: type[ProviderSettings]
    labels_output: bool
    """True when the shot id is drawn into the clip, so it belongs in the key."""

    def capabilities(self, model: str) -> Capabilities:
        """What `model` accepts; the planner rejects jobs outside it before paying."""
        ...

    def price(self, job: RenderJob) -> Price | None:
        """Estimated cost of `job`, or None when unknown."""
        ...

    def render(self, job: RenderJob, dest: Path, ctx: RenderContext) -> RenderResult:
        """Generate `job` and write the MP4 to `dest` (a temporary path the cache adopts).

        Submit, poll and download; journal the operation id through `ctx.journal` as soon as
        the provider returns it, and resume from `ctx.journal.read()` when it holds one.
        Report progress through `ctx.progress`. Raise ProviderError on failure, with
        `retryable=True` for faults worth another try.
        """
        ...


def available() -> dict[str, str]:
    """Every provider name -> "module:Class", built-ins first, then entry points."""
    import sys

    found = dict(BUILTIN)
    for name, value in _entry_points(tuple(sys.path)):
        if name in found and found[name] != value:
            raise StoryboardError(
                f"provider '{name}' is registered twice ({found[name]} and {value}); "
                "uninstall one of the plugins"
            )
        found[name] = value
    return found


@functools.lru_cache(maxsize=4)
def _entry_points(search_path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The plugins' (name, "module:Class"), read once per search path: loading and opening a project
    both ask (storyboard.providers.plugins reads them without importing importlib.metadata)."""
    from storyboard.providers.plugins import entry_points

    found = entry_points(ENTRY_POINT_GROUP, search_path)
    if found is None:  # a zipped distribution on the path
        from importlib.metadata import entry_points as installed

        found = [(ep.name, ep.value) for ep in installed(group=ENTRY_POINT_GROUP)]
    return tuple(found)


def provider_class(name: str, registry: dict[str, str] | None = None) -> Any:
    """Import the class registered as `name`."""
    import importlib

    registry = registry if registry is not None else available()
    target = registry[name]
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def load_provider(name: str, settings: ProviderSettings | None = None, **kwargs: Any) -> Provider:
    """Construct the provider registered as `name` with its settings."""
    cls = provider_class(name)
    return cls(settings or cls.Settings(), **kwargs)


__all__ = [
    "BUILTIN",
    "Capabilities",
    "Price",
    "Provider",
    "ProviderSettings",
    "RenderContext",
    "RenderJob",
    "RenderResult",
    "available",
    "load_provider",
    "provider_class",
]
