"""Takes: a shot's several candidates, each its own cache entry, and the one the film uses.

    [[shot]]
    takes = 3      # generate 3 candidates (each paid for, each kept)
    pick = 2       # the one the film and every dependant use

Candidate k of a shot is its RenderJob with `candidate = k` (and `batch`, which `build --force`
bumps). Both are left out of the key at their defaults, so candidate 1 of batch 0 has the very key
the shot had before takes existed: no cache goes stale and nobody pays again. `pick` is not in the
candidates' keys (switching it generates nothing); it is in every dependant's key all the same,
because a dependant's key holds the digests of the picked clip's bytes and frames.

The lock keeps every candidate of a shot under `candidates` (by cache key), beside the picked one's
fields where readers always found them, so gc keeps them all while the shot is in the storyboard.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from storyboard.job import RenderJob, key_components

VARIANT_FIELDS = ("candidate", "batch", "take", "label")
"""What tells one candidate of a shot from another: two jobs equal but for these are the same shot's."""


@dataclass(frozen=True)
class Candidate:
    """One candidate of a shot, as `storyboard takes` and the review room show it."""

    shot: str
    number: int
    """1-based: the `pick` that selects it."""
    key: str
    """This candidate's cache key ("" when its inputs wait on an upstream that will rerun)."""
    sha: str | None
    """The clip's sha256 when built, else None."""
    path: Path | None
    """The clip in the cache when built."""
    duration: float | None
    cost: float | None
    unit: str | None
    created: str | None
    """As the lock records it (else the cache's action)."""
    provider: str
    picked: bool
    continuity: float | None
    """0..1 likeness of this candidate's first frame to the previous film clip's last frame
    (None for the first clip of the film, a shot not in it, or an unbuilt candidate)."""
    continuity_next: float | None = None
    """0..1 likeness of this candidate's last frame to the next film clip's first frame (None for the
    last clip, a shot not in the film, or an unbuilt candidate)."""


def candidate_jobs(job: RenderJob, takes: int) -> list[RenderJob]:
    """The jobs of candidates 1..takes: `job` (any one of them) with its candidate number set."""
    return [job if job.candidate == k else replace(job, candidate=k) for k in range(1, takes + 1)]


def batches(locked: dict[str, dict[str, Any]], forced: set[str] | frozenset[str] = frozenset()) -> dict[str, int]:
    """shot id -> the batch its candidates are keyed with: the lock's, one more for a shot `--force`d."""
    found = {}
    for shot_id, entry in locked.items():
        batch = entry.get("batch", 0) if isinstance(entry, dict) else 0
        found[shot_id] = batch if isinstance(batch, int) and batch >= 0 else 0
    for shot_id in forced:
        found[shot_id] = found.get(shot_id, 0) + 1
    return found


def family(components: dict[str, Any]) -> dict[str, Any]:
    """A job's key material without what tells its candidates (and batches, takes) apart."""
    return {k: v for k, v in components.items() if k not in VARIANT_FIELDS}


def missing_reason(missing: tuple[int, ...]) -> str:
    """Why a shot whose picked clip is cached runs all the same: candidates not generated yet."""
    return f"take{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} not generated yet"


def lost_answer(resolver: Any, shot: Any, job: RenderJob, missing: tuple[int, ...]) -> tuple[str, str] | None:
    """("uncertain", why) when a request for missing candidates lost its answer and may have been
    charged (it is journaled under its first candidate's key), else None."""
    for number, _job, key in resolver.candidates(shot, job):
        sent = (resolver.cache.journal(key).read() or {}) if number in missing else {}
        if sent.get("uncertain"):
            return "uncertain", (f"a {sent.get('provider')} create sent at {sent.get('sent')} lost its answer and "
                                 "may have been charged: check the provider's console, then `storyboard build "
                                 f"--resubmit {shot.id}`")
    return None


def resumed_request(resolver: Any, shot: Any, job: RenderJob, missing: tuple[int, ...]) -> str | None:
    """Words for `plan` when a request for missing candidates is journaled: the build resumes it (it
    was paid for when it was sent) instead of sending another; None when none is."""
    for number, _job, key in resolver.candidates(shot, job):
        sent = (resolver.cache.journal(key).read() or {}) if number in missing else {}
        if sent.get("operation"):
            asked = sent.get("candidates")
            videos = len(asked) if isinstance(asked, list) and asked else 1
            return (f"resumes the {sent.get('provider')} request sent at {sent.get('submitted', '?')} "
                    f"({videos} video{'s' if videos > 1 else ''}, already paid)")
    return None


def candidate_record(number: int, job: RenderJob, entry: dict[str, Any]) -> dict[str, Any]:
    """What the lock keeps of one candidate: enough to list it and for gc to keep its files."""
    meta = entry.get("meta") or {}
    record = {"number": number, "batch": job.batch, "take": job.take,
              "clip": entry["outputs"]["clip"], "first": entry["outputs"]["first"],
              "last": entry["outputs"]["last"], "duration": meta.get("duration"),
              **{k: entry.get(k) for k in ("provider", "cost", "unit", "created") if entry.get(k) is not None}}
    return {k: v for k, v in record.items() if v is not None}


def lock_entry(previous: dict[str, Any] | None, key: str, job: RenderJob, entry: dict[str, Any],
               built: dict[str, tuple[RenderJob, dict[str, Any]]]) -> dict[str, Any]:
    """The shot's lock entry: the picked candidate's fields, every candidate under `candidates`.

    `built` maps the keys of this build's candidates to their job and action. Candidates the
    previous entry recorded stay when they are of the same shot (its material but for candidate,
    batch and take): an older batch or take is still a paid take of it. A changed prompt or input
    makes a new shot, whose old clips gc may collect as it always could.
    """
    components = key_components(job)
    candidates: dict[str, Any] = {}
    old = (previous or {}).get("candidates")
    if isinstance(old, dict) and isinstance((previous or {}).get("components"), dict) \
            and family(previous["components"]) == family(components):
        candidates.update({k: v for k, v in old.items() if isinstance(v, dict)})
    elif isinstance((previous or {}).get("components"), dict) and family(previous["components"]) == \
            family(components) and isinstance(previous.get("clip"), str) and isinstance(previous.get("key"), str):
        # a lock written before takes: its one clip is candidate 1 of its take
        before = previous["components"]
        candidates[previous["key"]] = {k: v for k, v in {
            "number": before.get("candidate", 1), "batch": before.get("batch", 0), "take": before.get("take", 1),
            "clip": previous.get("clip"), "first": previous.get("first"), "last": previous.get("last"),
            "provider": previous.get("provider"), "cost": previous.get("cost"), "unit": previous.get("unit"),
            "created": previous.get("created")}.items() if v is not None}
    for cand_key, (cand_job, cand_entry) in built.items():
        candidates[cand_key] = candidate_record(cand_job.candidate, cand_job, cand_entry)
    record = {
        "key": key,
        "components": components,
        "clip": entry["outputs"]["clip"],
        "first": entry["outputs"]["first"],
        "last": entry["outputs"]["last"],
        **{k: entry.get(k) for k in ("provider", "model", "cost", "unit", "seconds", "created", "handle")
           if entry.get(k) is not None},
    }
    if job.batch:
        record["batch"] = job.batch
    if len(candidates) > 1 or job.candidate != 1:
        record["candidates"] = dict(sorted(candidates.items()))
    return record


def pinned(entry: dict[str, Any]) -> set[str]:
    """Every object a shot's candidates need (gc keeps them while the shot is in a storyboard)."""
    found: set[str] = set()
    candidates = entry.get("candidates")
    if isinstance(candidates, dict):
        for record in candidates.values():
            if isinstance(record, dict):
                found |= {v for k in ("clip", "first", "last") if isinstance(v := record.get(k), str)}
    return found


def locked_keys(entry: dict[str, Any]) -> list[str]:
    """The cache keys a shot's lock entry names: the picked candidate's, then every other candidate's
    (push and pull share them all: a teammate must not pay again for a take someone kept)."""
    candidates = entry.get("candidates")
    return list(dict.fromkeys([entry["key"], *(candidates if isinstance(candidates, dict) else ())]))


# ---- listing -----------------------------------------------------------------------------------


def list_candidates(project: Any, shot_id: str, planned: tuple[list[Any], Any] | None = None) -> list[Candidate]:
    """The candidates 1..takes of `shot_id` (project = storyboard.build.open_project(...)), in order.

    Pure: plans the board (no provider call) to know each candidate's key, then reads the cache.
    `planned` is what storyboard.build.plan_project(project) returned, to list several shots on one
    plan (see all_candidates).

    Raises:
        StoryboardError: no such shot (with a did-you-mean).
    """
    from storyboard.build import plan_project

    board = project.board
    if shot_id not in board.shots:
        from storyboard.errors import StoryboardError, did_you_mean

        raise StoryboardError(f"{board.path}: no shot '{shot_id}'{did_you_mean(shot_id, board.shots)}")
    shot = board.shots[shot_id]
    steps, resolver = planned or plan_project(project)
    step = next(s for s in steps if s.shot == shot_id)
    locked = project.lock.shots.get(shot_id) or {}
    recorded = locked.get("candidates") if isinstance(locked.get("candidates"), dict) else {}
    before, after = _neighbours(project, resolver, shot_id)
    found = []
    jobs = resolver.candidates(shot, step.job) if step.job is not None else \
        [(k, None, "") for k in range(1, shot.takes + 1)]
    for number, _job, key in jobs:
        entry = resolver.action(key) if key else None
        record = recorded.get(key) or ({k: locked.get(k) for k in ("created", "cost", "unit")}
                                       if key and locked.get("key") == key else {})
        sha = entry["outputs"]["clip"] if entry else None
        first, last = (_frame(project, entry, "first"), _frame(project, entry, "last")) if entry else (None, None)
        found.append(Candidate(
            shot=shot_id, number=number, key=key, sha=sha,
            path=project.cache.object_path(sha) if sha else None,
            duration=(entry.get("meta") or {}).get("duration") if entry else None,
            cost=record.get("cost", entry.get("cost") if entry else None),
            unit=record.get("unit", entry.get("unit") if entry else None),
            created=record.get("created", entry.get("created") if entry else None),
            provider=shot.provider, picked=number == shot.pick,
            continuity=continuity(before, first) if before and first else None,
            continuity_next=continuity(last, after) if after and last else None,
        ))
    return found


def all_candidates(project: Any) -> dict[str, list[Candidate]]:
    """Every shot's candidates, in run order, on one plan of the board."""
    from storyboard.build import plan_project

    planned = plan_project(project)
    return {shot_id: list_candidates(project, shot_id, planned) for shot_id in project.order}


def _frame(project: Any, entry: dict[str, Any], which: str) -> Path | None:
    path = project.cache.object_path(entry["outputs"][which])
    return path if path.exists() else None


def _neighbours(project: Any, resolver: Any, shot_id: str) -> tuple[Path | None, Path | None]:
    """The last frame of the film clip before `shot_id` and the first of the one after (PNGs in the
    cache), when built."""
    sequence = list(project.board.sequence)
    if shot_id not in sequence:
        return None, None
    i = sequence.index(shot_id)
    prev = resolver.outputs.get(sequence[i - 1]) if i > 0 else None
    succ = resolver.outputs.get(sequence[i + 1]) if i + 1 < len(sequence) else None
    return (_frame(project, prev, "last") if prev else None, _frame(project, succ, "first") if succ else None)


THUMB = (32, 18)
"""Frames are compared at this size, in grey: framing and light, not noise or compression."""


def continuity(a: Path, b: Path) -> float:
    """1 - the mean absolute difference of two images scaled to THUMB in grey, 0..1; deterministic."""
    pa, pb = _thumb(a), _thumb(b)
    return round(1 - sum(abs(x - y) for x, y in zip(pa, pb, strict=True)) / (255 * len(pa)), 4)


def _thumb(path: Path) -> bytes:
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    small = frame.reformat(width=THUMB[0], height=THUMB[1], format="gray")
    plane = small.planes[0]
    data = bytes(plane)
    return b"".join(data[row * plane.line_size: row * plane.line_size + THUMB[0]] for row in range(THUMB[1]))


def force_batches(project: Any, shots: list[str]) -> None:
    """`build --force SHOT`: key SHOT's candidates with the next batch, so they are generated anew
    (the old batch stays in the cache and the lock, as paid takes of the shot).

    Raises:
        StoryboardError: an unknown shot (with a did-you-mean).
    """
    from storyboard.build import check_shot_names

    check_shot_names(project, "--force", shots)
    project.forced = frozenset(shots)


def takes_table(candidates: list[Candidate]) -> str:
    """`storyboard takes` as plain columns: one line per candidate, the picked one marked."""
    from storyboard.estimate import format_price
    from storyboard.job import Price

    lines = [f"{'':2}{'take':>4}  {'duration':>8}  {'cost':>8}  {'created':<20}  {'key':<12}  {'continuity':>10}  next"]
    for c in candidates:
        cost = format_price(Price(c.cost, c.unit or "USD")) if c.cost is not None else ("?" if c.sha else "")
        lines.append(f"{'*' if c.picked else '':2}{c.number:>4}  "
                     f"{f'{c.duration:.2f} s' if c.duration is not None else 'not built':>8}  {cost:>8}  "
                     f"{c.created or '':<20}  {c.key[:12] or 'pending':<12}  "
                     f"{'' if c.continuity is None else f'{c.continuity:.3f}':>10}  "
                     f"{'' if c.continuity_next is None else f'{c.continuity_next:.3f}'}".rstrip())
    return "\n".join(lines)
