"""plan(): for every shot, cached or to run, and why. Pure: no provider call, no rendering.

Keys are computed in topological order. A shot whose upstream will rerun cannot know its key
yet (its inputs are that upstream's new frames, which may come out byte-identical to the old
ones), so the plan says it *may* rerun and names the upstream: only `build` can tell.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from storyboard.assets import clip_seconds
from storyboard.cache import Cache, cache_key
from storyboard.errors import StoryboardFileError
from storyboard.frames import frame_digests
from storyboard.job import EXTENSION_SECONDS, RenderJob, job_duration, key_components
from storyboard.model import Asset, Board, FrameInput, ImageInput, Shot
from storyboard.plan_reasons import explain, waiting
from storyboard.takes import candidate_jobs, lost_answer, missing_reason, resumed_request

CACHED, REMOTE, RUN, MAY_RERUN = "cached", "remote hit", "to run", "may rerun"
WAITS = MAY_RERUN
"""The former name: a shot waiting on an upstream that reruns."""
UNCERTAIN = "uncertain"
"""A create was sent and its answer lost: it may be charged, so build refuses it without --resubmit."""


@dataclass(frozen=True)
class Step:
    """One shot's decision."""

    shot: str
    status: str
    reason: str
    key: str | None = None
    job: RenderJob | None = None
    upstream_reruns: str | None = None
    missing: tuple[int, ...] = ()
    """The candidates (storyboard.takes) to generate: each is paid for."""


@dataclass
class Resolver:
    """Turns a shot into its RenderJob once its inputs' digests are known."""

    board: Board
    cache: Cache
    providers: dict[str, Any]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """shot id -> its action entry (outputs: clip/first/last digests; meta)."""
    force: set[str] = field(default_factory=set)
    """Shots to generate again although cached: their provider handle, needed to extend them, expired."""
    resubmit: set[str] = field(default_factory=set)
    """Shots whose create may have been charged (journaled `uncertain`) to send again all the same (--resubmit)."""
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """key -> the action entry found for it in this run: each action is read and verified once."""
    keys: dict[RenderJob, str] = field(default_factory=dict)
    """job -> its cache key: a job planned is not serialised again when it runs."""
    former: dict[str, str] = field(default_factory=dict)
    """Pixel digest of a handed-off frame -> its PNG's bytes digest, which keyed requests before."""
    batches: dict[str, int] = field(default_factory=dict)
    """shot id -> its batch (storyboard.takes.batches): what `build --force` bumps."""
    jobs: dict[str, tuple[tuple[Any, ...], RenderJob, dict[str, Path | str]]] = field(default_factory=dict)
    """shot id -> (what its job was made from, the job, its inputs): each shot's job is made once per
    run (plan's is the build's) while its upstream entries, batch and asset digests are the same."""

    def candidates(self, shot: Shot, job: RenderJob) -> list[tuple[int, RenderJob, str]]:
        """(number, job, key) of each of the shot's `takes` candidates; `job` is any one of them."""
        return [(k, j, self.key(j)) for k, j in enumerate(candidate_jobs(job, shot.takes), start=1)]

    def key(self, job: RenderJob) -> str:
        """The job's cache key, computed once per run."""
        key = self.keys.get(job)
        if key is None:
            key = self.keys[job] = cache_key(key_components(job))
        return key

    def action(self, key: str, job: RenderJob | None = None) -> dict[str, Any] | None:
        """The cached action for `key`; a hit is remembered for the run (a miss is not: a twin may
        generate it meanwhile). With `job`, an action cached under the job's former key (its
        frames named by PNG bytes) is found too, and filed under `key` so it is found directly."""
        entry = self.actions.get(key)
        if entry is None:
            entry = self.cache.get_action(key) or self._frames_restored(key)
            if entry is None and job is not None:
                entry = self._former_action(key, job)
            if entry is not None:
                self.actions[key] = entry
        return entry

    def _frames_restored(self, key: str) -> dict[str, Any] | None:
        """The action for `key` when its clip is intact and only a frame PNG is gone (deleted, or
        removed as corrupt): the frames are extracted from the paid clip again, not paid for again."""
        entry = self.cache.read_action(key)
        outputs = entry.get("outputs") if entry is not None else None
        if not isinstance(outputs, dict) or set(outputs) != {"clip", "first", "last"} \
                or not all(isinstance(sha, str) for sha in outputs.values()) or not self.cache.intact(outputs["clip"]):
            return None
        from storyboard.landing import restore_frames

        return restore_frames(self.cache, key, entry)

    def _former_action(self, key: str, job: RenderJob) -> dict[str, Any] | None:
        """The action paid for under the PNG-keyed form of `job`: the same request, the same frames."""
        from storyboard.errors import CacheError

        update: dict[str, Any] = {f: self.former[d] for f in ("first_frame", "last_frame")
                                  if (d := getattr(job, f)) in self.former}
        references = tuple(self.former.get(d, d) for d in job.references)
        if references != job.references:
            update["references"] = references
        if not update:
            return None
        entry = self.cache.get_action(cache_key(key_components(replace(job, **update))))
        if entry is None:
            return None
        entry = {**entry, "key": key}
        try:
            self.cache.put_action(key, entry)
        except CacheError:
            pass  # a read-only cache: found again this way next time
        return entry

    def ready(self, shot: Shot) -> bool:
        return all(up in self.outputs for up in shot.upstream())

    def job(self, shot: Shot) -> tuple[RenderJob, dict[str, Path | str]]:
        """The job and, for each input digest, a file with its bytes (a path or its string); made once
        while its sources hold."""
        made_from = self._sources(shot)
        known = self.jobs.get(shot.id)
        if known is not None and len(known[0]) == len(made_from) and all(
                a is b or a == b for a, b in zip(known[0], made_from)):
            return known[1], dict(known[2])
        job, inputs = self._make_job(shot)
        self.jobs[shot.id] = (made_from, job, dict(inputs))
        return job, inputs

    def _sources(self, shot: Shot) -> tuple[Any, ...]:
        """What shapes the shot's job besides the shot: its batch, each upstream's action entry (the
        same object while it is not made again) and the digest of each asset it reads."""
        assets = [a for a in (shot.first_frame, shot.last_frame, *shot.references, shot.edits,
                              shot.extends_clip) if isinstance(a, Asset) and a.path is not None]
        return (self.batches.get(shot.id, 0), *(self.outputs.get(up) for up in shot.upstream()),
                *(self.cache.digest(a.path) for a in assets))

    def _make_job(self, shot: Shot) -> tuple[RenderJob, dict[str, Path | str]]:
        inputs: dict[str, Path | str] = {}

        def digest(image: ImageInput | None) -> str | None:
            if image is None:
                return None
            sha, path = self._image(shot, image)
            inputs[sha] = path
            return sha

        extends = None
        if shot.extends:
            extends = self.outputs[shot.extends]["outputs"]["clip"]
            inputs[extends] = self.cache.object_path(extends)
        edits, duration = self._edit_source(shot, inputs)
        if shot.extends_clip is not None:  # footage: the clip returned is the asset's length + 7 s
            extends, path = self._image(shot, shot.extends_clip)
            inputs[extends] = path
            duration = clip_seconds(path) + EXTENSION_SECONDS
        impl = self.providers[shot.provider]
        # every value comes from the shot, validated at load (the same types): not validated again
        job = RenderJob(
            provider=shot.provider,
            model=shot.model,
            prompt=shot.prompt,
            negative_prompt=shot.negative_prompt,
            duration=job_duration(shot.duration, bool(shot.extends)) if duration is None else duration,
            resolution=shot.resolution,
            aspect_ratio=shot.aspect_ratio,
            seed=shot.seed,
            audio=shot.audio,
            take=shot.take,
            first_frame=digest(shot.first_frame),
            last_frame=digest(shot.last_frame),
            references=tuple(d for r in shot.references if (d := digest(r))),
            extends=extends,
            edits=edits,
            options=tuple(map(tuple, impl.job_options(shot))) if hasattr(impl, "job_options") else (),
            label=shot.id if getattr(impl, "labels_output", False) else "",
            candidate=shot.pick,
            batch=self.batches.get(shot.id, 0),
        )
        return job, inputs

    def _edit_source(self, shot: Shot, inputs: dict[str, Path | str]) -> tuple[str | None, int | float | None]:
        """The digest of the clip `shot` edits (another shot's, or an MP4 asset) and its length."""
        if shot.edits is None:
            return None, None
        if isinstance(shot.edits, str):
            sha = self.outputs[shot.edits]["outputs"]["clip"]
            path = self.cache.object_path(sha)
        else:
            sha, path = self._image(shot, shot.edits)
        inputs[sha] = path
        return sha, clip_seconds(path)

    def _image(self, shot: Shot, image: ImageInput) -> tuple[str, Path | str]:
        """The input's digest and its file (a frame's as a string: the executor makes Paths of the
        inputs of the shots it runs, and a plan of cached shots needs none)."""
        if isinstance(image, Asset):
            if image.path is None:
                raise StoryboardFileError(
                    f"{self.board.path}: shot '{shot.id}': asset '{image.label}' is a URL; download it "
                    "beside the storyboard and name the file (URL assets are not fetched yet)")
            return self.cache.digest(image.path), image.path
        assert isinstance(image, FrameInput)
        entry = self.outputs[image.shot]
        if image.frame in ("first", "last"):
            png = entry["outputs"][image.frame]
            pixels = (entry.get("pixels") or {}).get(image.frame)
            if isinstance(pixels, str):
                frame_digests(self.cache).remember(png, pixels)
            else:  # cached before pixel keys: decoded once, then remembered
                pixels = frame_digests(self.cache).of(png)
            self.former[pixels] = png
            return pixels, self.cache.object_file(png)
        return self._frame_at(entry["outputs"]["clip"], float(image.frame))

    def _frame_at(self, clip: str, seconds: float) -> tuple[str, Path]:
        """A timed frame: its pixel digest and a PNG of it, extracted once per clip and time."""
        name = f"frame:{clip}:{seconds:.6f}"
        png = self.cache.memo_sha(name)
        if png is None:
            from storyboard.media import extract_frame

            tmp = self.cache.tmp_path(".png")
            pixels = extract_frame(self.cache.object_path(clip), seconds, tmp)
            self.cache.memo_put(name, tmp)
            png = self.cache.memo_sha(name)
            assert png is not None
            frame_digests(self.cache).remember(png, pixels)
        pixels = frame_digests(self.cache).of(png)
        self.former[pixels] = png
        return pixels, self.cache.object_path(png)


def plan(board: Board, order: list[str], resolver: Resolver, locked: dict[str, dict[str, Any]],
         now: float | None = None, remote: Any = None) -> list[Step]:
    """Decide every shot in `order`, filling `resolver.outputs` with the cached ones.

    A cached shot is generated again when a shot extends it on a provider that needs its own handle
    on the clip (Gemini keeps files 2 days) and that handle has expired: `resolver.force` lists them.
    """
    import time

    now = time.time() if now is None else now
    handle_needed = {s.extends: s.id for s in board.shots.values()
                     if s.extends and getattr(resolver.providers[s.provider], "extension_needs_handle", False)}
    steps: list[Step] = []
    rerun: set[str] = set()
    from_remote: set[str] = set()
    planned: dict[str, str] = {}
    """key -> the first shot planned to generate it."""
    for shot_id in order:
        shot = board.shots[shot_id]
        blocked = next((up for up in shot.upstream() if up in rerun), None) if rerun else None
        if blocked is not None:
            rerun.add(shot_id)
            steps.append(Step(shot_id, MAY_RERUN, waiting(shot, blocked, locked.get(shot_id)),
                              upstream_reruns=blocked))
            continue
        fetched = next((up for up in shot.upstream() if up in from_remote
                        and _needs_remote_pixels(shot, up, resolver)), None) if from_remote else None
        if fetched is not None:
            rerun.add(shot_id)
            steps.append(Step(shot_id, MAY_RERUN, f"needs a frame of '{fetched}', which comes from the remote: "
                                                 "known once it is downloaded"))
            continue
        job, _ = resolver.job(shot)
        key = resolver.key(job)
        entry = resolver.action(key, job)
        missing = () if shot.takes == 1 == shot.pick else tuple(
            k for k, j, kk in resolver.candidates(shot, job) if k != shot.pick and resolver.action(kk, j) is None
            and (remote is None or remote.lookup(kk) is None))
        stale = _stale_handle(entry, now) if entry is not None and shot_id in handle_needed else None
        if stale:
            resolver.force.add(shot_id)
            rerun.add(shot_id)
            steps.append(Step(shot_id, RUN, f"{stale}: '{handle_needed[shot_id]}' extends it, so it is "
                                            "generated again", key, job, missing=tuple(sorted({shot.pick, *missing}))))
            continue
        if entry is not None:
            resolver.outputs[shot_id] = entry
            mismatch = f"up to date; warning: {entry['mismatch']}" if entry.get("mismatch") else "up to date"
            if missing:  # the picked clip is there (dependants can plan); the other candidates are not
                status, reason = lost_answer(resolver, shot, job, missing) or (
                    RUN, resumed_request(resolver, shot, job, missing) or missing_reason(missing))
                steps.append(Step(shot_id, status, reason, key, job, missing=missing))
            else:
                steps.append(Step(shot_id, CACHED, mismatch, key, job))
            continue
        remote_entry = remote.lookup(key) if remote is not None else None
        if remote_entry is not None:
            resolver.outputs[shot_id] = remote_entry
            from_remote.add(shot_id)
            if missing:
                steps.append(Step(shot_id, RUN, missing_reason(missing), key, job, missing=missing))
            else:
                steps.append(Step(shot_id, REMOTE, "a teammate generated it: downloaded from the remote", key, job))
            continue
        rerun.add(shot_id)
        missing = tuple(sorted({shot.pick, *missing}))
        twin = planned.setdefault(key, shot_id)
        if twin != shot_id:  # the build generates the request once: whichever is second finds it cached
            steps.append(Step(shot_id, MAY_RERUN, f"the same request as '{twin}': cached once '{twin}' is "
                                                  "generated", key, job, missing=missing))
            continue
        lost = lost_answer(resolver, shot, job, missing)
        if lost is not None:
            steps.append(Step(shot_id, *lost, key, job, missing=missing))
            continue
        why = explain(board, shot, job, locked.get(shot_id))
        resumed = resumed_request(resolver, shot, job, missing)
        steps.append(Step(shot_id, RUN, f"{why}; {resumed}" if resumed else why, key, job, missing=missing))
    return steps


def _needs_timed_frame(shot: Shot, upstream: str) -> bool:
    """True when `shot` takes a frame at a time from `upstream`: extracting it needs the clip itself."""
    return any(isinstance(i, FrameInput) and i.shot == upstream and i.frame not in ("first", "last")
               for i in (shot.first_frame, shot.last_frame, *shot.references))


def _needs_remote_pixels(shot: Shot, upstream: str, resolver: Resolver) -> bool:
    """True when a frame `shot` takes from `upstream`, still on the remote, has no known pixel digest:
    a timed frame (extracted from the clip), or a first/last frame a former version cached unkeyed."""
    if _needs_timed_frame(shot, upstream):
        return True
    entry = resolver.outputs[upstream]
    pixels = entry.get("pixels") or {}
    return any(isinstance(i, FrameInput) and i.shot == upstream and not isinstance(pixels.get(i.frame), str)
               and not resolver.cache.has_object(entry["outputs"][i.frame])
               for i in (shot.first_frame, shot.last_frame, *shot.references))


def _stale_handle(entry: dict[str, Any], now: float) -> str | None:
    """Why a cached clip's provider handle can no longer be extended, or None."""
    from datetime import datetime

    handle = entry.get("handle") or {}
    if not handle.get("uri"):
        return f"the clip has no {entry.get('provider')} file handle"
    expires = handle.get("expires")
    if expires:
        try:
            when = datetime.fromisoformat(str(expires).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
        if when <= now:
            return f"its {entry.get('provider')} file handle expired at {expires}"
    return None
