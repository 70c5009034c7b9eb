"""Why a shot runs, in words: from the key components the lock recorded the last time it ran."""

from __future__ import annotations

from typing import Any

from storyboard.estimate import pseudo_job
from storyboard.job import RenderJob, key_components
from storyboard.model import Asset, Board, ImageInput, Shot


def waiting(shot: Shot, upstream: str, previous: dict[str, Any] | None) -> str:
    """Why a shot whose key waits on `upstream` may rerun: its own edits, if any, then the upstream."""
    if not isinstance(previous, dict) or not isinstance(previous.get("components"), dict):
        return f"new shot; runs after upstream '{upstream}'"
    now = key_components(pseudo_job(shot))
    own = _changes(previous["components"], now, [k for k in now if k in _PARAMETERS])
    if own:
        return f"{'; '.join(own)}; upstream '{upstream}' reruns"
    return f"upstream '{upstream}' reruns; cached if '{upstream}' comes out as before"


_PARAMETERS = ("provider", "model", "prompt", "negative_prompt", "seed", "take", "duration", "resolution",
               "aspect_ratio", "audio", "candidate", "batch")


def _changes(before: dict[str, Any], now: dict[str, Any], names: list[str]) -> list[str]:
    """The generation parameters among `names` that changed, in words."""
    if "provider" in names and before.get("provider") != now["provider"]:
        return [f"provider changed ({_show(before.get('provider'))} -> {_show(now['provider'])})"]
    if "model" in names and before.get("model") != now["model"]:
        return [f"model changed ({_show(before.get('model'))} -> {_show(now['model'])})"]
    reasons = []
    for name in names:
        if before.get(name) == now[name]:
            continue
        if name in ("prompt", "negative_prompt"):
            reasons.append(f"{name.replace('_', ' ')} changed")
        else:
            reasons.append(f"{name} changed ({_show(before.get(name))} -> {_show(now[name])})")
    return reasons


def explain(board: Board, shot: Shot, job: RenderJob, previous: dict[str, Any] | None) -> str:
    """Why a shot runs, in words, from the key components the lock recorded last time."""
    if previous is None or "components" not in previous:
        return "new shot"
    before = previous["components"]
    now = key_components(job)
    if before == now:
        return "not in the cache"
    changed = [k for k in now if before.get(k) != now[k] and k != "label"]
    reasons = _changes(before, now, [k for k in changed if k in _PARAMETERS])
    if reasons and reasons[0].startswith(("provider changed", "model changed")):
        return reasons[0]
    inputs = {"first_frame": shot.first_frame, "last_frame": shot.last_frame}
    for name in changed:
        if name in _PARAMETERS:
            continue
        if name in inputs:
            reasons.append(f"input {_input_label(inputs[name], name)} changed")
        elif name == "references":
            reasons.append(_references_changed(shot, [str(d) for d in before.get(name) or []], list(now[name])))
        elif name == "extends":
            reasons.append(f"the clip of '{shot.extends}' changed" if shot.extends else "extension removed")
        else:
            reasons.append(f"parameter {name} changed")
    return "; ".join(reasons) or "not in the cache"


def _references_changed(shot: Shot, before: list[str], now: list[str]) -> str:
    """Which reference images changed, by their digests: only those are named."""
    if sorted(before) == sorted(now):
        return "reference images reordered"
    new = [_quote(r) for r, sha in zip(shot.references, now, strict=True) if sha not in before]
    gone = sum(1 for sha in before if sha not in now)
    said = []
    if new:
        verb = "added" if not gone else "changed" if len(new) == gone else "changed or added"
        said.append(f"reference{'s' if len(new) > 1 else ''} {', '.join(new)} {verb}")
    extra = gone - len(new)
    if extra > 0:
        said.append(f"{extra} reference image{'s' if extra > 1 else ''} removed")
    return "; ".join(said) or "reference images changed"


def _quote(image: ImageInput) -> str:
    return f"'{image.label}'"


def _input_label(image: ImageInput | None, field: str) -> str:
    if image is None:
        return f"{field} (removed)"
    if isinstance(image, Asset):
        return f"asset '{image.label}'"
    return f"frame '{image.label}'"


def _show(value: Any) -> str:
    return "none" if value is None else str(value)
