"""Estimates for plan and build: cost per provider and wall time under the build's limits."""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from storyboard.job import EXTENSION_SECONDS, Price, RenderJob, frame_size, job_duration
from storyboard.model import Shot

TYPICAL_SECONDS = 90.0
"""A Veo 3.1 job takes 11 s to 6 min (Google's 'Limitations'); 90 s is the planning guess."""


def pseudo_job(shot: Shot) -> RenderJob:
    """The job a shot will send once its inputs exist; enough to price it."""
    pending = "0" * 64
    return RenderJob(
        provider=shot.provider, model=shot.model, prompt=shot.prompt, negative_prompt=shot.negative_prompt,
        duration=job_duration(shot.duration, bool(shot.extends)), resolution=shot.resolution,
        aspect_ratio=shot.aspect_ratio, seed=shot.seed, audio=shot.audio, take=shot.take,
        first_frame=pending if shot.first_frame else None, last_frame=pending if shot.last_frame else None,
        references=tuple(pending for _ in shot.references), extends=pending if shot.extends else None,
        candidate=shot.pick,
    )


@dataclass
class Totals:
    """Cost per unit (USD, credits) and per provider, and the unpriced shots."""

    by_unit: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    by_provider: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    unpriced: list[str] = field(default_factory=list)

    def add(self, shot: str, provider: str, price: Price | None) -> None:
        if price is None:
            self.unpriced.append(shot)
            return
        self.by_unit[price.unit] += price.amount
        self.by_provider[provider][price.unit] += price.amount

    def usd(self) -> float:
        return self.by_unit.get("USD", 0.0)


def format_price(price: Price | None) -> str:
    if price is None:
        return "?"
    if price.unit == "USD":
        return f"${price.amount:.2f}"
    return f"{price.amount:g} {price.unit}"


def wall_time(
    to_run: Iterable[str],
    upstream: dict[str, list[str]],
    provider_of: dict[str, str],
    seconds: dict[str, float],
    jobs: int,
    limits: dict[str, tuple[int, float | None]],
) -> float:
    """Simulated makespan: ready shots start in order, within `jobs`, each provider's concurrency and rpm.

    `limits[provider] = (concurrency, requests per minute or None)`; each job costs one request.
    Shots not in `to_run` count as done (cached). Event-driven with a ready queue per provider, so
    10,000 shots simulate in milliseconds.
    """
    order = list(to_run)
    index = {shot: i for i, shot in enumerate(order)}
    waiting_on: dict[str, int] = {}
    dependants: dict[str, list[str]] = defaultdict(list)
    ready: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for shot in order:
        ups = [u for u in upstream.get(shot, ()) if u in index]
        waiting_on[shot] = len(ups)
        for u in ups:
            dependants[u].append(shot)
        if not ups:
            heapq.heappush(ready[provider_of[shot]], (index[shot], shot))
    running: list[tuple[float, str]] = []
    busy: dict[str, int] = defaultdict(int)
    sent: dict[str, deque[float]] = defaultdict(deque)
    now, left = 0.0, len(order)
    while left:
        rpm_wakeup = None
        while len(running) < jobs:
            best = None
            for p, queue in ready.items():
                if not queue:
                    continue
                concurrency, rpm = limits.get(p, (jobs, None))
                if busy[p] >= concurrency:
                    continue
                window = sent[p]
                while window and window[0] <= now - 60.0:
                    window.popleft()
                if rpm and len(window) >= rpm:
                    wake = window[0] + 60.0
                    rpm_wakeup = wake if rpm_wakeup is None else min(rpm_wakeup, wake)
                    continue
                if best is None or queue[0][0] < ready[best][0][0]:
                    best = p
            if best is None:
                break
            _, shot = heapq.heappop(ready[best])
            sent[best].append(now)
            busy[best] += 1
            heapq.heappush(running, (now + seconds[shot], shot))
        events = [t for t in (running[0][0] if running else None, rpm_wakeup) if t is not None]
        if not events:
            break  # nothing can ever start: an upstream outside the plan never finishes
        now = max(now, min(events))
        while running and running[0][0] <= now:
            _, shot = heapq.heappop(running)
            busy[provider_of[shot]] -= 1
            left -= 1
            for dep in dependants[shot]:
                waiting_on[dep] -= 1
                if waiting_on[dep] == 0:
                    heapq.heappush(ready[provider_of[dep]], (index[dep], dep))
    return now


def limits_for(providers: dict[str, Any], settings: dict[str, Any], jobs: int) -> dict[str, tuple[int, float | None]]:
    """(concurrency, rpm) per provider, from `[providers.NAME]` or the provider's defaults."""
    out = {}
    for name, impl in providers.items():
        table = settings.get(name)
        concurrency = getattr(table, "concurrency", None) or getattr(impl, "default_concurrency", jobs)
        rpm = getattr(table, "rpm", None) or getattr(impl, "default_rpm", None)
        out[name] = (min(int(concurrency), jobs), rpm)
    return out


REFERENCE_PIXELS = 1280 * 720
"""Local render rates are per second of 720p output; other sizes scale with their pixel count."""
NOMINAL_ENCODE_RATE = 0.2
"""Wall seconds to render or stitch one second of 720p video with ffmpeg on a typical machine: the
stitch's rate until a local provider's renders measure this machine's own."""
STITCH_WORK = {"encode": 1.2, "copy": 0.05, "join": 0.17}
"""Stitching, in seconds of 720p encoding per second of video: a changed clip is conformed, re-encoded
(`encode`) when transitions cut into it or stream-copied (`copy`) between plain cuts, and the whole
film is joined with its audio encoded once (`join`). Measured on the lighthouse example (crossfades)
and a board of cuts, against the animatic's render rate on the same machine."""


@dataclass(frozen=True)
class Speed:
    """A local provider's throughput: wall seconds per second of 720p output, and how it is known."""

    provider: str
    rate: float
    renders: int
    """How many of this board's past renders measured it; 0 means the provider's nominal rate."""

    def describe(self) -> str:
        if self.renders:
            renders = f"{self.renders} render{'s' if self.renders > 1 else ''}"
            return f"{self.provider} at the speed of its {renders} in the lock"
        return f"{self.provider} at its nominal speed until a build measures it"


def local_speeds(providers: dict[str, Any], locked: dict[str, dict[str, Any]]) -> dict[str, Speed]:
    """The throughput of each provider that renders on this machine (it declares a nominal `render_rate`).

    Measured from the renders the lock recorded: each took `seconds` from `created`, so renders that
    ran side by side share the wall time they overlapped. The rate is that wall time over the 720p
    output seconds rendered in it, the speed the build actually got from this machine's cores.
    A remote provider's wait is latency, not speed: it keeps its latency model.
    """
    locked = {shot: entry for shot, entry in locked.items() if isinstance(entry, dict)}
    lengths = _locked_lengths(locked)
    speeds = {}
    for name, impl in providers.items():
        nominal = getattr(impl, "render_rate", None)
        if nominal is None:
            continue
        renders = [r for shot, entry in locked.items()
                   if entry.get("provider") == name and (r := _render(entry, lengths.get(shot))) is not None]
        wall, work = _wall_and_work(renders)
        speeds[name] = Speed(name, wall / work, len(renders)) if work > 0 and wall > 0 \
            else Speed(name, float(nominal), 0)
    return speeds


def _render(entry: dict[str, Any], length: float | None) -> tuple[float, float, float] | None:
    """(start, end, 720p output seconds) of one recorded render, or None if the lock lacks a part."""
    from datetime import datetime

    seconds, parts = entry.get("seconds"), entry.get("components") or {}
    if not length or not isinstance(seconds, int | float) or seconds <= 0:
        return None
    try:
        start = datetime.fromisoformat(str(entry["created"])).timestamp()
        width, height = frame_size(parts["resolution"], parts["aspect_ratio"])
    except (KeyError, ValueError, TypeError):
        return None
    return start, start + seconds, length * width * height / REFERENCE_PIXELS


def _wall_and_work(renders: list[tuple[float, float, float]]) -> tuple[float, float]:
    """The wall time the renders covered (overlaps counted once) and the output they made."""
    wall, end = 0.0, float("-inf")
    for start, stop, _ in sorted(renders):
        if stop > end:
            wall += stop - max(start, end)
            end = stop
    return wall, sum(work for *_, work in renders)


def _locked_lengths(locked: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Seconds of each locked shot's clip: its duration, or its source's length plus 7 s for an extension."""
    by_clip = {entry.get("clip"): shot for shot, entry in locked.items()}
    lengths: dict[str, float] = {}

    def length(shot: str, depth: int = 0) -> float | None:
        if shot not in lengths:
            parts = locked[shot].get("components") or {}
            if parts.get("extends"):
                source = by_clip.get(parts["extends"])
                base = length(source, depth + 1) if source is not None and depth < len(locked) else None
                if base is None:
                    return None
                lengths[shot] = base + EXTENSION_SECONDS
            elif isinstance(parts.get("duration"), int | float):
                lengths[shot] = float(parts["duration"])
            else:
                return None
        return lengths[shot]

    for shot in locked:
        length(shot)
    return lengths


def stitch_seconds(changed_seconds: float, film_seconds: float, pixels: int, copy: bool,
                   speeds: dict[str, Speed]) -> float:
    """How long stitching takes once `changed_seconds` of clips changed in a film `film_seconds` long."""
    import statistics  # here: a plan with nothing to stitch needs none of it (≈ 5 ms to import)

    measured = [s.rate for s in speeds.values() if s.renders]
    rate = statistics.median(measured) if measured else NOMINAL_ENCODE_RATE
    conform = STITCH_WORK["copy" if copy else "encode"]
    return rate * (conform * changed_seconds + STITCH_WORK["join"] * film_seconds) * pixels / REFERENCE_PIXELS


def render_seconds(impl: Any, job: RenderJob, output_seconds: float, speed: Speed | None) -> float:
    """How long one job should take: a local provider's measured rate times its output, else latency."""
    if speed is None:
        return typical_seconds(impl, job)
    width, height = frame_size(job.resolution, job.aspect_ratio)
    return speed.rate * output_seconds * width * height / REFERENCE_PIXELS


def typical_seconds(impl: Any, job: RenderJob) -> float:
    """How long a provider usually takes for a job (the provider may say; else the Veo guess)."""
    guess = getattr(impl, "typical_seconds", None)
    if callable(guess):
        return float(guess(job))
    return float(guess) if guess is not None else TYPICAL_SECONDS
