"""Estimates for plan and build: cost per provider and wall time under the build's limits."""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from storyboard.job import Price, RenderJob
from storyboard.model import Shot

TYPICAL_SECONDS = 90.0
"""A Veo 3.1 job takes 11 s to 6 min (Google's 'Limitations'); 90 s is the planning guess."""


def pseudo_job(shot: Shot) -> RenderJob:
    """The job a shot will send once its inputs exist; enough to price it."""
    pending = "0" * 64
    return RenderJob(
        provider=shot.provider, model=shot.model, prompt=shot.prompt, negative_prompt=shot.negative_prompt,
        duration=shot.duration, resolution=shot.resolution, aspect_ratio=shot.aspect_ratio, seed=shot.seed,
        audio=shot.audio, take=shot.take,
        first_frame=pending if shot.first_frame else None, last_frame=pending if shot.last_frame else None,
        references=tuple(pending for _ in shot.references), extends=pending if shot.extends else None,
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


def typical_seconds(impl: Any, job: RenderJob) -> float:
    """How long a provider usually takes for a job (the provider may say; else the Veo guess)."""
    guess = getattr(impl, "typical_seconds", None)
    if callable(guess):
        return float(guess(job))
    return float(guess) if guess is not None else TYPICAL_SECONDS
