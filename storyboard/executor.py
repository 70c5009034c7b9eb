"""run(): render the shots a plan says to run, in parallel, committing each one as it lands.

The only concurrent part of storyboard: a bounded thread pool; a shot starts when its inputs
exist. Failures are returned as outcomes, and a shot whose upstream failed is skipped.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from storyboard.cache import cache_key
from storyboard.errors import MediaError, ProviderError, StoryboardError
from storyboard.job import EXTENSION_SECONDS, FPS, RenderContext, RenderJob
from storyboard.lockfile import LockFile
from storyboard.model import Board
from storyboard.plan import Resolver


class Outcome(enum.Enum):
    RENDERED = "rendered"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class ShotReport:
    shot: str
    outcome: Outcome
    key: str | None = None
    error: str | None = None
    seconds: float = 0.0
    warning: str | None = None
    """Why the clip differs from the request (kept all the same: it was paid for)."""


@dataclass
class BuildReport:
    shots: dict[str, ShotReport] = field(default_factory=dict)
    film: Any = None
    interrupted: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.shots.values() if r.outcome is outcome)

    @property
    def failed(self) -> list[ShotReport]:
        return [r for r in self.shots.values() if r.outcome is Outcome.FAILED]


EventFn = Callable[[str, str, dict[str, Any]], None]
"""on_event(shot, state, info): queued, cached, submitted, rendering, downloading, done, failed, skipped, waiting."""


class Cancelled(StoryboardError):
    """The build was interrupted; in-flight jobs stay journaled."""

    exit_code = 130


class _Limiter:
    """Per-provider concurrency; shared by every thread of one build."""

    def __init__(self, providers: dict[str, Any], board: Board, jobs: int) -> None:
        self._sems: dict[str, threading.Semaphore] = {}
        for name, impl in providers.items():
            settings = board.providers.get(name)
            limit = getattr(settings, "concurrency", None) or getattr(impl, "default_concurrency", jobs)
            self._sems[name] = threading.Semaphore(max(1, int(limit)))

    def __call__(self, provider: str) -> threading.Semaphore:
        return self._sems[provider]


def run(
    board: Board,
    order: list[str],
    resolver: Resolver,
    lock: LockFile,
    *,
    jobs: int = 4,
    keep_going: bool = False,
    on_event: EventFn | None = None,
    cancel: threading.Event | None = None,
    remote: Any = None,
) -> BuildReport:
    """Render every shot in `order` that is not cached; returns what happened to each."""
    cache = resolver.cache
    notify = on_event or (lambda shot, state, info: None)
    cancel = cancel or threading.Event()
    limiter = _Limiter(resolver.providers, board, jobs)
    report = BuildReport()
    pending = list(order)
    running: dict[Future[ShotReport], str] = {}
    stop = False

    def skip_dependants(failed: str) -> None:
        for shot_id in list(pending):
            if failed in _all_upstream(board, shot_id):
                pending.remove(shot_id)
                report.shots[shot_id] = ShotReport(shot_id, Outcome.SKIPPED, error=f"upstream '{failed}' failed")
                notify(shot_id, "skipped", {"because": failed})

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="shot") as pool:
        try:
            while pending or running:
                for shot_id in [s for s in pending if resolver.ready(board.shots[s])] if not stop else []:
                    pending.remove(shot_id)
                    shot = board.shots[shot_id]
                    try:
                        job, inputs = resolver.job(shot)
                    except StoryboardError as exc:
                        report.shots[shot_id] = ShotReport(shot_id, Outcome.FAILED, error=exc.message)
                        notify(shot_id, "failed", {"error": exc.message})
                        skip_dependants(shot_id)
                        stop = not keep_going
                        continue
                    key = cache_key(job.model_dump(mode="json"))
                    entry = None if shot_id in resolver.force else cache.get_action(key)
                    if entry is not None:
                        resolver.outputs[shot_id] = entry
                        _record(lock, shot_id, key, job, entry)
                        report.shots[shot_id] = ShotReport(shot_id, Outcome.CACHED, key)
                        notify(shot_id, "cached", {})
                        continue
                    notify(shot_id, "queued", {})
                    fut = pool.submit(_render_one, board, resolver, lock, shot_id, job, inputs, key,
                                      limiter(shot.provider), notify, cancel, remote)
                    running[fut] = shot_id
                if not running:
                    if pending and (stop or not any(resolver.ready(board.shots[s]) for s in pending)):
                        for shot_id in pending:
                            report.shots.setdefault(shot_id, ShotReport(shot_id, Outcome.SKIPPED,
                                                                         error="build stopped"))
                        break
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    shot_id = running.pop(fut)
                    result = fut.result()
                    report.shots[shot_id] = result
                    if result.outcome is Outcome.FAILED:
                        skip_dependants(shot_id)
                        if not keep_going:
                            stop = True
        except KeyboardInterrupt:
            cancel.set()
            report.interrupted = True
            for fut in running:
                fut.cancel()
            raise Cancelled("interrupted: finished shots are cached; in-flight jobs are journaled "
                            "and resume on the next build") from None
    return report


def _all_upstream(board: Board, shot_id: str) -> set[str]:
    seen: set[str] = set()
    stack = list(board.shots[shot_id].upstream())
    while stack:
        up = stack.pop()
        if up not in seen:
            seen.add(up)
            stack.extend(board.shots[up].upstream())
    return seen


def _record(lock: LockFile, shot_id: str, key: str, job: RenderJob, entry: dict[str, Any],
            paid: bool = False) -> None:
    previous = lock.shots.get(shot_id, {})
    # a regenerated key (an expired handle) has a new clip and handle: the lock must pin those
    if previous.get("key") == key and previous.get("clip") == entry["outputs"]["clip"] \
            and previous.get("handle") == entry.get("handle"):
        return
    lock.record_shot(shot_id, {
        "key": key,
        "components": job.model_dump(mode="json"),
        "clip": entry["outputs"]["clip"],
        "first": entry["outputs"]["first"],
        "last": entry["outputs"]["last"],
        **{k: entry.get(k) for k in ("provider", "model", "cost", "unit", "seconds", "created", "handle")
           if entry.get(k) is not None},
    }, durable=paid)


def expected_seconds(job: RenderJob, resolver: Resolver) -> float:
    """How long the returned clip must be: an extension returns its source plus 7 s.

    The source's length is its measured duration (probed when it was cached), not a frame
    count at an assumed rate: a 30 fps source of 240 frames is 8 s, not 10.
    """
    if job.extends:
        for entry in resolver.outputs.values():
            if entry["outputs"]["clip"] == job.extends:
                meta = entry.get("meta") or {}
                seconds = meta.get("duration")
                if seconds is None:  # an entry from before durations were recorded
                    from storyboard.media import probe

                    seconds = probe(resolver.cache.object_path(job.extends)).duration
                return float(seconds) + EXTENSION_SECONDS
    return float(job.duration)


def _render_one(board: Board, resolver: Resolver, lock: LockFile, shot_id: str, job: RenderJob,
                inputs: dict[str, Any], key: str, slot: threading.Semaphore, notify: EventFn,
                cancel: threading.Event, remote: Any = None) -> ShotReport:
    cache = resolver.cache
    started = time.monotonic()
    provider = resolver.providers[job.provider]
    try:
        with cache.in_use(), cache.key_lock(key, on_wait=lambda who: notify(shot_id, "waiting", {"holder": who})):
            entry = None if shot_id in resolver.force else cache.get_action(key)
            outcome = Outcome.CACHED
            if entry is None and remote is not None and shot_id not in resolver.force:
                notify(shot_id, "downloading", {"from": "remote"})
                entry = remote.fetch(key, cache)
            # one machine of a team pays for a key; the others wait for its entry (storyboard/lease.py)
            leased = entry is None and remote is not None and shot_id not in resolver.force
            with remote.lease(key, cache, lambda who: notify(shot_id, "waiting", {"holder": who}), cancel) \
                    if leased else nullcontext() as fetched:
                entry = entry or fetched
                if entry is None:
                    with slot:
                        if cancel.is_set():
                            raise Cancelled("interrupted")
                        entry = _generate(board, resolver, shot_id, job, inputs, key, provider, notify, cancel)
                    outcome = Outcome.RENDERED
                    if remote is not None:
                        remote.publish(key, entry, cache)
        resolver.outputs[shot_id] = entry
        _record(lock, shot_id, key, job, entry, paid=outcome is Outcome.RENDERED)
        notify(shot_id, "done" if outcome is Outcome.RENDERED else "cached", {"seconds": time.monotonic() - started})
        return ShotReport(shot_id, outcome, key, seconds=time.monotonic() - started, warning=entry.get("mismatch"))
    except StoryboardError as exc:
        notify(shot_id, "failed", {"error": exc.message})
        return ShotReport(shot_id, Outcome.FAILED, key, error=exc.message, seconds=time.monotonic() - started)


def _generate(board: Board, resolver: Resolver, shot_id: str, job: RenderJob, inputs: dict[str, Any],
              key: str, provider: Any, notify: EventFn, cancel: threading.Event) -> dict[str, Any]:
    """Render, verify, extract the frames and commit the action: nothing partial enters the cache."""
    from storyboard.media import extract_first_last, probe

    cache = resolver.cache
    handles = {}
    for up in resolver.outputs.values():
        if up.get("handle") and up["outputs"]["clip"] in inputs:
            handles[up["outputs"]["clip"]] = up["handle"]

    def sleep(seconds: float) -> None:
        if cancel.wait(seconds):
            raise Cancelled("interrupted")

    ctx = RenderContext(
        shot_id=shot_id,
        inputs=inputs,
        journal=cache.journal(key),
        progress=lambda state, fraction=None: notify(shot_id, state, {"fraction": fraction}),
        sleep=sleep,
        handles=handles,
        settings=board.providers.get(job.provider),
    )
    _refuse_uncertain(shot_id, ctx, resolver.resubmit)
    clip_tmp = cache.tmp_path(".mp4")
    first_tmp = cache.tmp_path(".png")
    last_tmp = cache.tmp_path(".png")
    started = time.time()
    mismatch = None
    try:
        result = provider.render(job, clip_tmp, ctx)
        try:
            info = probe(clip_tmp)
        except MediaError as exc:
            raise ProviderError(f"shot '{shot_id}': {job.provider} returned a file that does not decode: "
                                f"{exc.message}", provider=job.provider) from exc
        want = expected_seconds(job, resolver)
        if abs(info.duration - want) > 1.5 / FPS + 0.05:  # paid for and decodable: keep it, say so
            mismatch = (f"{job.provider} returned {info.duration:.2f} s for a {want:.2f} s request; kept "
                        "(it was paid for) and used as it is")
        extract_first_last(clip_tmp, first_tmp, last_tmp)
        outputs = {"clip": cache.adopt(clip_tmp), "first": cache.adopt(first_tmp), "last": cache.adopt(last_tmp)}
    except OSError as exc:  # providers write into the cache's tmp/: a full or read-only disk is a CacheError
        if (error := cache.write_error(exc)) is None:
            raise
        raise error from exc
    finally:
        for tmp in (clip_tmp, first_tmp, last_tmp):
            if tmp.exists():
                tmp.unlink()
    entry = {
        "key": key,
        "outputs": outputs,
        "meta": {"width": info.width, "height": info.height, "fps": info.fps, "frames": info.frames,
                 "duration": info.duration, "has_audio": info.has_audio},
        "provider": job.provider,
        "model": job.model,
        "cost": result.cost.amount if result.cost else None,
        "unit": result.cost.unit if result.cost else None,
        "operation": result.operation,
        "handle": result.handle,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        **({"mismatch": mismatch} if mismatch else {}),
    }
    cache.put_action(key, entry)
    ctx.journal.clear()
    return entry


def _refuse_uncertain(shot_id: str, ctx: RenderContext, resubmit: set[str]) -> None:
    """Fail a shot whose last create may have been charged (journaled `uncertain`), unless --resubmit names it."""
    entry = ctx.journal.read() or {}
    if not entry.get("uncertain"):
        return
    if shot_id in resubmit:
        ctx.journal.clear()
        return
    provider = entry.get("provider", "the provider")
    raise ProviderError(f"shot '{shot_id}': a {provider} create sent at {entry.get('sent', '?')} lost its answer and "
                        "may have been charged; it is not sent again on its own. Check the jobs and billing in "
                        f"{provider}'s console; to pay for it again, run `storyboard build --resubmit {shot_id}`",
                        provider=provider)
