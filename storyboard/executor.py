"""run(): render the shots a plan says to run, in parallel, committing each one as it lands.

The only concurrent part of storyboard: a bounded thread pool; a shot starts when its inputs
exist. Failures are returned as outcomes, and a shot whose upstream failed is skipped.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.errors import ProviderError, StoryboardError
from storyboard.job import EXTENSION_SECONDS, RenderContext, RenderJob
from storyboard.batching import NotingJournal, extra_candidates, forced_batch_noter, group_requests
from storyboard.landing import commit_clip
from storyboard.lockfile import LockFile
from storyboard.model import Board
from storyboard.plan import CACHED, Resolver, Step
from storyboard.scheduling import POLL, Limiter, Schedule, ctrl_c_flag

if TYPE_CHECKING:
    from concurrent.futures import Future


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
    generated: int = 0
    """Videos landed by this build (a shot's candidates: several where it has takes)."""


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
    planned: list[Step] | None = None,
) -> BuildReport:
    """Render every shot in `order` that is not cached; returns what happened to each.

    `planned`: the steps plan() gave with `resolver`'s memos: a shot it found cached with its one
    candidate is taken as it found it, not looked up again."""
    notify = on_event or (lambda shot, state, info: None)
    if (report := _all_cached(board, order, resolver, lock, notify, planned or [])) is not None:
        return report  # nothing to render: no pool, no scheduling (a no-op build of 1,000 shots)
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    cancel = cancel or threading.Event()
    limiter = Limiter(resolver.providers, board, jobs)
    report = BuildReport()
    graph = Schedule(board, order, resolver.outputs)
    running: dict[Future[ShotReport], str] = {}
    in_flight: dict[str, str] = {}
    """key -> the shot generating it; a twin (the same request) waits for it and finds it cached."""
    twins: dict[str, list[str]] = {}
    stop = False

    def skip_dependants(failed: str) -> None:
        for shot_id in graph.drop_descendants(failed):
            report.shots[shot_id] = ShotReport(shot_id, Outcome.SKIPPED, error=f"upstream '{failed}' failed")
            notify(shot_id, "skipped", {"because": failed})

    with (ctrl_c_flag() as pressed,
          ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="shot") as pool):
        try:
            while not pressed[0]:
                while not stop and (shot_id := graph.next_ready()) is not None:
                    shot = board.shots[shot_id]
                    try:
                        job, inputs = resolver.job(shot)
                    except StoryboardError as exc:
                        report.shots[shot_id] = ShotReport(shot_id, Outcome.FAILED, error=exc.message)
                        notify(shot_id, "failed", {"error": exc.message})
                        skip_dependants(shot_id)
                        stop = not keep_going
                        continue
                    key, entry, candidates, cached = _look_up(shot, job, resolver)
                    if entry is not None and len(cached) == len(candidates):
                        _commit_cached(shot_id, key, job, entry, cached, resolver, lock, report, notify)
                        graph.finished(shot_id)
                        continue
                    if key in in_flight:
                        twins.setdefault(key, []).append(shot_id)
                        continue
                    in_flight[key] = shot_id
                    notify(shot_id, "queued", {})
                    inputs = {sha: Path(path) for sha, path in inputs.items()}  # files the provider reads
                    fut = pool.submit(_render_one, board, resolver, lock, shot_id, candidates, inputs, key,
                                      limiter(shot.provider), notify, cancel, remote)
                    running[fut] = shot_id
                if not running:  # nothing in flight and nothing ready: whatever is left cannot start
                    for shot_id in graph.left():
                        report.shots.setdefault(shot_id, ShotReport(shot_id, Outcome.SKIPPED, error="build stopped"))
                    break
                done, _ = wait(running, timeout=POLL, return_when=FIRST_COMPLETED)
                for fut in done:
                    shot_id = running.pop(fut)
                    result = fut.result()
                    report.shots[shot_id] = result
                    if result.key is not None and in_flight.get(result.key) == shot_id:
                        del in_flight[result.key]
                        for twin in twins.pop(result.key, []):
                            graph.again(twin)  # cached now, or (if it failed) generated by the twin
                    if result.outcome is Outcome.FAILED:
                        skip_dependants(shot_id)
                        if not keep_going:
                            stop = True
                    else:
                        graph.finished(shot_id)
            if pressed[0]:
                raise KeyboardInterrupt  # Ctrl-C, seen where the loop can stop cleanly
        except KeyboardInterrupt:
            cancel.set()
            report.interrupted = True
            for fut in running:
                fut.cancel()
            raise Cancelled("interrupted: finished shots are cached; in-flight jobs are journaled "
                            "and resume on the next build") from None
        except BaseException:  # the loop itself failed: the shots in flight stop at their next wait,
            cancel.set()  # rather than the pool's exit waiting out a provider's whole deadline
            raise
    return report


Cached = dict[str, tuple[RenderJob, dict[str, Any]]]
"""key -> (job, action entry) of each of a shot's candidates found in the cache."""


def _look_up(shot: Any, job: RenderJob, resolver: Resolver) -> tuple[str, dict[str, Any] | None, list[Any], Cached]:
    """The shot's key, its cached entry (None when missing or forced), its candidates and the cached ones."""
    key = resolver.key(job)
    entry = None if shot.id in resolver.force else resolver.action(key, job)
    candidates = resolver.candidates(shot, job)
    cached = {kk: (j, e) for k, j, kk in candidates
              if (e := entry if k == shot.pick else resolver.action(kk, j)) is not None}
    return key, entry, candidates, cached


def _commit_cached(shot_id: str, key: str, job: RenderJob, entry: dict[str, Any], cached: Cached,
                   resolver: Resolver, lock: LockFile, report: BuildReport, notify: EventFn) -> None:
    """A shot found in the cache, every candidate too: its outputs known, the lock pinning it, told."""
    resolver.outputs[shot_id] = entry
    _record(lock, shot_id, key, job, entry, cached)
    report.shots[shot_id] = ShotReport(shot_id, Outcome.CACHED, key)
    notify(shot_id, "cached", {})


def _all_cached(board: Board, order: list[str], resolver: Resolver, lock: LockFile,
                notify: EventFn, planned: list[Step]) -> BuildReport | None:
    """The report of a build whose every shot is cached (committed in order), or None, having
    committed nothing, when one is not: a no-op build then needs neither the pool nor the schedule."""
    found = []
    steps = {step.shot: step for step in planned if step.status == CACHED}
    try:
        for shot_id in order:
            shot = board.shots[shot_id]
            if shot_id in resolver.force or not all(up in resolver.outputs for up in shot.upstream()):
                return None
            step = steps.get(shot_id)
            entry = resolver.actions.get(step.key) if step is not None and shot.takes == 1 else None
            if entry is not None:  # as plan found it (its job from these upstream entries)
                job, key = step.job, step.key  # type: ignore[union-attr]
                cached = {key: (job, entry)}
            else:
                job, _ = resolver.job(shot)
                key, entry, candidates, cached = _look_up(shot, job, resolver)
                if entry is None or len(cached) != len(candidates):
                    return None
            found.append((shot_id, key, job, entry, cached))
            resolver.outputs[shot_id] = entry  # its dependants' jobs read it
    except StoryboardError:
        return None  # the loop reports it as the shot's failure
    finally:
        if len(found) < len(order):  # not every shot: the loop starts from nothing known
            for shot_id, *_ in found:
                del resolver.outputs[shot_id]
    report = BuildReport()
    for shot_id, key, job, entry, cached in found:
        _commit_cached(shot_id, key, job, entry, cached, resolver, lock, report, notify)
    return report


def _record(lock: LockFile, shot_id: str, key: str, job: RenderJob, entry: dict[str, Any],
            built: dict[str, tuple[RenderJob, dict[str, Any]]], paid: bool = False) -> None:
    """Record the shot (its picked candidate where readers look, every candidate under `candidates`)."""
    from storyboard.takes import lock_entry

    previous = lock.shots.get(shot_id, {})
    if (previous.get("key") == key and job.candidate == 1 and previous.get("candidates") is None
            and built.keys() == {key} and previous.get("clip") == entry["outputs"]["clip"]
            and previous.get("first") == entry["outputs"]["first"] and previous.get("last") == entry["outputs"]["last"]
            and previous.get("handle") == entry.get("handle") and previous.get("batch") == (job.batch or None)):
        return  # what lock_entry would compare is the same: one candidate, the same key, clip and handle
    record = lock_entry(previous, key, job, entry, built)
    # a regenerated key (an expired handle) has a new clip and handle: the lock must pin those
    if all(previous.get(k) == record.get(k) for k in ("key", "clip", "first", "last", "handle", "candidates", "batch")):
        return
    lock.record_shot(shot_id, record, durable=paid)


def expected_seconds(job: RenderJob, resolver: Resolver, source: str | None = None) -> float:
    """How long the returned clip must be: an extension returns its source plus 7 s.

    The source's length is its measured duration (probed when it was cached), not a frame
    count at an assumed rate: a 30 fps source of 240 frames is 8 s, not 10. `source`, the shot
    extended, finds its entry directly; without it every output is searched.
    """
    if job.extends:
        known = resolver.outputs.get(source) if source else None
        for entry in [known] if known is not None else resolver.outputs.values():
            if entry["outputs"]["clip"] == job.extends:
                meta = entry.get("meta") or {}
                seconds = meta.get("duration")
                if seconds is None:  # an entry from before durations were recorded
                    from storyboard.media import probe

                    seconds = probe(resolver.cache.object_path(job.extends)).duration
                return float(seconds) + EXTENSION_SECONDS
    return float(job.duration)


def _render_one(board: Board, resolver: Resolver, lock: LockFile, shot_id: str,
                candidates: list[tuple[int, RenderJob, str]], inputs: dict[str, Any], key: str,
                slot: threading.Semaphore, notify: EventFn, cancel: threading.Event, remote: Any = None) -> ShotReport:
    """Generate the shot's missing candidates (storyboard.takes), several per request where the provider can."""
    cache = resolver.cache
    started = time.monotonic()
    shot = board.shots[shot_id]
    provider = resolver.providers[shot.provider]
    forced = shot_id in resolver.force
    outcome = Outcome.CACHED
    picked = next(c for c in candidates if c[0] == shot.pick)
    generated = 0
    try:
        # candidates a journaled request asked for beyond `takes` (lowered since): paid, so landed too
        extra = extra_candidates(resolver, candidates)
        with cache.in_use(), ExitStack() as held:
            for _k, _job, k_key in sorted([*candidates, *extra], key=lambda c: c[2]):  # one order: no deadlock
                held.enter_context(cache.key_lock(k_key, on_wait=lambda who: notify(shot_id, "waiting",
                                                                                    {"holder": who})))
            entries: dict[int, dict[str, Any] | None] = {}
            for number, _job, k_key in candidates:
                again = forced and number == shot.pick
                entry = None if again else cache.get_action(k_key)
                if entry is None and remote is not None and not again:
                    notify(shot_id, "downloading", {"from": "remote"})
                    entry = remote.fetch(k_key, cache)
                # one machine of a team pays for a key; the others wait for its entry (storyboard/lease.py)
                if entry is None and remote is not None and not again:
                    entry = held.enter_context(remote.lease(k_key, cache, lambda who: notify(
                        shot_id, "waiting", {"holder": who}), cancel))
                entries[number] = entry
            todo = [c for c in candidates if entries[c[0]] is None]
            size = max(1, int(getattr(provider, "max_samples", 1))) if hasattr(provider, "render_batch") else 1
            paid = forced_batch_noter(lock, shot_id, picked[1].batch)
            for group in group_requests(resolver, todo, [*candidates, *extra], size):
                with slot:
                    if cancel.is_set():
                        raise Cancelled("interrupted")
                    made = _generate(board, resolver, shot_id, group, inputs, provider, notify, cancel, paid)
                outcome = Outcome.RENDERED
                generated += len(made)
                for (number, _job, k_key), entry in zip(group, made, strict=True):
                    entries[number] = entry
                    if remote is not None:
                        remote.publish(k_key, entry, cache)
        built = {k_key: (job, entries[number]) for number, job, k_key in [*candidates, *extra]
                 if entries.get(number) is not None}
        entry = entries[shot.pick]
        resolver.outputs[shot_id] = entry
        _record(lock, shot_id, key, picked[1], entry, built, paid=outcome is Outcome.RENDERED)
        notify(shot_id, "done" if outcome is Outcome.RENDERED else "cached", {"seconds": time.monotonic() - started})
        warning = "; ".join(dict.fromkeys(m for e in entries.values() if (m := e.get("mismatch")))) or None
        return ShotReport(shot_id, outcome, key, seconds=time.monotonic() - started, warning=warning,
                          generated=generated)
    except StoryboardError as exc:
        notify(shot_id, "failed", {"error": exc.message})
        return ShotReport(shot_id, Outcome.FAILED, key, error=exc.message, seconds=time.monotonic() - started)


def _generate(board: Board, resolver: Resolver, shot_id: str, group: list[tuple[int, RenderJob, str]],
              inputs: dict[str, Any], provider: Any, notify: EventFn, cancel: threading.Event,
              paid: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
    """Render one request's candidates (one, or several where the provider batches: Vertex `sampleCount`),
    verify each, extract the frames and commit every action: nothing partial enters the cache.

    The request is journaled under its first candidate's key, so a killed build resumes it.
    """
    cache = resolver.cache
    handles = {}
    for up_id in board.shots[shot_id].upstream():  # its upstream only: every output would be O(n) a shot
        up = resolver.outputs.get(up_id)
        if up is not None and up.get("handle") and up["outputs"]["clip"] in inputs:
            handles[up["outputs"]["clip"]] = up["handle"]

    def sleep(seconds: float) -> None:
        if cancel.wait(seconds):
            raise Cancelled("interrupted")

    job = group[0][1]
    ctx = RenderContext(
        shot_id=shot_id,
        inputs=inputs,
        journal=NotingJournal(cache.journal(group[0][2]), paid),
        progress=lambda state, fraction=None: notify(shot_id, state, {"fraction": fraction}),
        sleep=sleep,
        handles=handles,
        settings=board.providers.get(job.provider),
        samples=len(group),
        candidates=tuple(number for number, _job, _key in group) if len(group) > 1 else (),
    )
    _refuse_uncertain(shot_id, ctx, resolver.resubmit)
    clips = [cache.tmp_path(".mp4") for _ in group]
    started = time.time()
    try:
        if len(group) == 1:
            results = [provider.render(job, clips[0], ctx)]
        else:
            results = provider.render_batch(job, clips, ctx)
        want = expected_seconds(job, resolver, board.shots[shot_id].extends)
        entries = [commit_clip(cache, shot_id, c_job, c_key, clip, result, started, want)
                   for (_n, c_job, c_key), clip, result in zip(group, clips, results)]
    except OSError as exc:  # providers write into the cache's tmp/: a full or read-only disk is a CacheError
        if (error := cache.write_error(exc)) is None:
            raise
        raise error from exc
    finally:
        for tmp in clips:
            if tmp.exists():
                tmp.unlink()
    ctx.journal.clear()
    if len(entries) < len(group):  # those that came are cached (paid for); the next build asks for the rest
        raise ProviderError(f"shot '{shot_id}': {job.provider} returned {len(entries)} of the {len(group)} videos "
                            "asked for; those are kept, and the next build asks for the others", provider=job.provider)
    return entries


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
