"""Model lifecycle: which models a provider can still serve, from storyboard/data/models.json.

Google shuts models down on announced dates (the Gemini API's Veo 3.1 previews on 2026-10-22);
a shot on such a model would fail only after a build starts, or get a bare 404. So:

    retired (shutdown date passed)    validation error, exit 2, naming the date and the replacement;
                                      a warning instead where `allow_retired = true` (a proxy still serves it)
    retiring within WARN_DAYS         a warning in `plan` and `build`
    404 "... is no longer available"  the same message at run time (HttpProvider.render)

The table is data, not code: a new shutdown notice is one row in models.json.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

WARN_DAYS = 30
GONE_MARKER = "is no longer available"
"""What Google's 404 for a shut-down model says (docs/google-2026.md §3)."""


@dataclass(frozen=True)
class ModelInfo:
    """One row of models.json."""

    provider: str
    model: str
    status: str
    retires: date | None = None
    replacements: tuple[tuple[str, str], ...] = ()
    source: str = ""

    def retired(self, today: date) -> bool:
        return self.status == "retired" or (self.retires is not None and self.retires <= today)


@functools.lru_cache(maxsize=1)
def table() -> dict[tuple[str, str], ModelInfo]:
    """(provider, model) -> ModelInfo, read once from the package data."""
    # beside the package's modules, read as a file: importlib.resources costs every plan ~5 ms of imports
    raw = json.loads((Path(__file__).parent / "data" / "models.json").read_text(encoding="utf-8"))
    rows = {}
    for row in raw["models"]:
        when = date.fromisoformat(row["retires"]) if row.get("retires") else None
        subs = tuple((r["provider"], r["model"]) for r in row.get("replacements", ()))
        rows[(row["provider"], row["model"])] = ModelInfo(row["provider"], row["model"], row["status"], when, subs,
                                                          row.get("source", ""))
    return rows


def lookup(provider: str, model: str) -> ModelInfo | None:
    return table().get((provider, model))


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def _instead(info: ModelInfo) -> str:
    options = " or ".join(f'provider "{p}" ({m})' for p, m in info.replacements)
    return f"; use {options}" if options else ""


def retired_message(provider: str, model: str) -> str:
    """`gemini: model 'X' was shut down on DATE; use provider "vertex" (Y) or ...` (or a generic one)."""
    info = lookup(provider, model)
    if info is None:
        return (f"{provider}: model '{model}' is no longer available (shut down by the service); "
                "choose a current model (see the README's provider table)")
    when = f" on {info.retires.isoformat()}" if info.retires else ""
    return f"{provider}: model '{model}' was shut down{when}{_instead(info)}"


def _allowed(settings: Any) -> bool:
    return bool(getattr(settings, "allow_retired", False))


def check(provider: str, model: str, settings: Any, today: date | None = None) -> str | None:
    """The validation error for a retired model unless `settings.allow_retired`, else None."""
    info = lookup(provider, model)
    if info is None or not info.retired(today or utc_today()) or _allowed(settings):
        return None
    return (f"{retired_message(provider, model)} (for an account or proxy that still serves it, set "
            f"allow_retired = true in [providers.{provider}])")


def check_shots(shots: Iterable[Any], providers: dict[str, Any], error: Callable[..., Exception],
                today: date | None = None) -> None:
    """Raise `error(message, shot, "model")` for the first shot on a retired model (storyboard.rules)."""
    for shot in shots:
        settings = getattr(providers.get(shot.provider), "settings", None)
        if (message := check(shot.provider, shot.model, settings, today)) is not None:
            raise error(message, shot.id, "model")


def warnings(shots: Iterable[Any], providers: dict[str, Any], today: date | None = None) -> list[str]:
    """Plan warnings: retired models let through by allow_retired, and models retiring within WARN_DAYS."""
    today = today or utc_today()
    used: dict[tuple[str, str], list[str]] = {}
    for shot in shots:
        used.setdefault((shot.provider, shot.model), []).append(shot.id)
    out = []
    for (provider, model), ids in used.items():
        info = lookup(provider, model)
        if info is None or info.retires is None and not info.retired(today):
            continue
        who = f"shot{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
        if info.retired(today):
            if _allowed(getattr(providers.get(provider), "settings", None)):
                out.append(f"warning: {who}: {retired_message(provider, model)}; building anyway because "
                           f"allow_retired = true in [providers.{provider}]")
        elif info.retires is not None and (days := (info.retires - today).days) <= WARN_DAYS:
            out.append(f"warning: {who}: {provider}: model '{model}' is announced to shut down on "
                       f"{info.retires.isoformat()} (in {days} day{'s' if days != 1 else ''}){_instead(info)}")
    return out


def gone(status: int | None, message: str) -> bool:
    """Whether an API error says the model itself was shut down (Google's 404 wording)."""
    return status == 404 and GONE_MARKER in message
