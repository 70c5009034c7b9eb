"""What the review room's page shows, as JSON: the film, and every shot's candidates in film order.

Read from the plan, the lock and the cache only: computing it spends nothing and renders
nothing. Clips are named by their content digest (`/media/<sha>`), so a URL never goes stale:
a new film or a new candidate is a new URL.
"""

from __future__ import annotations

from typing import Any

from storyboard.estimate import format_price
from storyboard.job import Price


def media_url(sha: str) -> str:
    return f"/media/{sha}"


def board_state(project: Any) -> dict[str, Any]:
    """The page's data for `project` (storyboard.build.open_project): film, shots, candidates."""
    from storyboard.takes import all_candidates

    board = project.board
    in_film = {shot_id: n for n, shot_id in enumerate(board.sequence, start=1)}
    ordered = list(board.sequence) + [s for s in project.order if s not in in_film]
    candidates = all_candidates(project)  # one plan for the whole board
    shots = []
    for shot_id in ordered:
        shot = board.shots[shot_id]
        shots.append({
            "id": shot_id,
            "number": in_film.get(shot_id),
            "prompt": shot.prompt,
            "negative_prompt": shot.negative_prompt,
            "settings": _settings(shot),
            "takes": shot.takes,
            "pick": shot.pick,
            "candidates": [_candidate(c) for c in candidates[shot_id]],
        })
    return {
        "board": {"name": board.path.name, "title": board.film.title or board.path.stem,
                  "output": _relative(board.output, board.root)},
        "film": film_state(project),
        "shots": shots,
    }


def film_state(project: Any) -> dict[str, Any] | None:
    """The film the lock records, when its bytes are in the cache."""
    film = project.lock.film
    sha = film.get("sha") if isinstance(film, dict) else None
    if not isinstance(sha, str) or not project.cache.object_path(sha).is_file():
        return None
    entry = project.cache.get_action(film["key"]) if isinstance(film.get("key"), str) else None
    duration = ((entry or {}).get("meta") or {}).get("duration")
    return {"sha": sha, "url": media_url(sha), "duration": duration}


def _settings(shot: Any) -> dict[str, Any]:
    settings = {"provider": shot.provider, "model": shot.model, "duration": shot.duration,
                "resolution": shot.resolution, "aspect_ratio": shot.aspect_ratio, "seed": shot.seed,
                "audio": shot.audio, "take": shot.take}
    for name in ("continues", "extends"):
        if getattr(shot, name):
            settings[name] = getattr(shot, name)
    return settings


def _candidate(c: Any) -> dict[str, Any]:
    return {
        "number": c.number,
        "picked": c.picked,
        "built": c.sha is not None,
        "sha": c.sha,
        "url": media_url(c.sha) if c.sha else None,
        "duration": c.duration,
        "cost": c.cost,
        "unit": c.unit,
        "cost_text": format_price(Price(c.cost, c.unit or "USD")) if c.cost is not None else None,
        "created": c.created,
        "provider": c.provider,
        "continuity": c.continuity,
        "continuity_next": c.continuity_next,
        "key": c.key,
    }


def _relative(path: Any, root: Any) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name


def shas_in(state: dict[str, Any]) -> set[str]:
    """Every digest the page may ask for: the film's and the built candidates'."""
    found = {c["sha"] for s in state.get("shots", ()) for c in s["candidates"] if c.get("sha")}
    if state.get("film"):
        found.add(state["film"]["sha"])
    return found
