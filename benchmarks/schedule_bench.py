"""Scheduling: makespan of the executor against a lower bound, on a fake provider of fixed latency.

    python benchmarks/schedule_bench.py [--latency 1.0] [--repeat 3] [--only NAME ...]

The provider (``BenchFake``, registered in-process as ``BUILTIN["benchfake"]``) waits for the
shared ``RateLimiter`` of ``storyboard.providers._http`` (one request per shot, as a submit),
sleeps its latency through ``ctx.sleep`` and copies a pre-rendered 4 s clip of 32x18; the
executor then probes the clip, extracts its first and last frames and commits the shot, as for
any provider. The executor's own semaphore enforces ``[providers.benchfake] concurrency``.

Each scenario runs ``storyboard.executor.run`` on a generated board in a fresh cache and compares
the makespan with the lower bound

    max(critical path x latency, shots x latency / concurrency, rate bound)

where the rate bound is ``floor((shots - 1) / rpm) x 60 s + latency``: the limiter lets at most
``rpm`` requests through in any 60 s, so the last request cannot be made sooner. For a fan, that
bound is not reachable even in theory (the children wait for the root), so a tighter bound that
is still a bound is shown beside it: for every depth d, ``d x latency + (shots at depth >= d) x
latency / concurrency``. The per-shot overhead is the time from the end of a render (the
provider's return) to the shot's commit: probe, frame extraction, cache writes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _bench import load, own_cpu

from storyboard import providers
from storyboard.build import open_project
from storyboard.executor import Outcome, run
from storyboard.job import Capabilities, Price, RenderResult
from storyboard.media import run_ffmpeg
from storyboard.providers import ProviderSettings
from storyboard.providers._http import RateLimiter

CLIP: Path | None = None
"""The pre-rendered clip every render copies (set by main)."""


@dataclass(frozen=True, kw_only=True)
class BenchFakeSettings(ProviderSettings):
    """``[providers.benchfake]``: the common settings plus the fixed latency of a render."""

    latency: float = 1.0


class BenchFake:
    """A provider whose every render takes ``latency`` seconds and one rate-limited request."""

    name = "benchfake"
    default_model = "benchfake-1"
    key_env: tuple[str, ...] = ()
    Settings = BenchFakeSettings
    labels_output = False
    renders: dict[str, tuple[float, float]] = {}
    """shot id -> (monotonic start, end) of its render, of the latest project."""

    def __init__(self, settings: BenchFakeSettings | None = None, **kwargs: object) -> None:
        self.settings = settings or BenchFakeSettings()
        self.limiter = RateLimiter(self.settings.rpm)
        BenchFake.renders = {}

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities()

    def price(self, job: object) -> Price:
        return Price(0.0)

    def render(self, job: object, dest: Path, ctx: object) -> RenderResult:
        start = time.monotonic()
        self.limiter.acquire(ctx.sleep)  # type: ignore[attr-defined]
        ctx.sleep(self.settings.latency)  # type: ignore[attr-defined]
        shutil.copyfile(CLIP, dest)  # type: ignore[arg-type]
        BenchFake.renders[ctx.shot_id] = (start, time.monotonic())  # type: ignore[attr-defined]
        return RenderResult(cost=Price(0.0))


@dataclass(frozen=True)
class Scenario:
    """A generated DAG (shot -> its upstream shots) and the provider's limits."""

    name: str
    deps: dict[str, list[str]]
    concurrency: int
    rpm: float | None = None


def chain(n: int, prefix: str = "c") -> dict[str, list[str]]:
    return {f"{prefix}{i:03d}": [f"{prefix}{i - 1:03d}"] if i else [] for i in range(n)}


def scenarios() -> list[Scenario]:
    chains: dict[str, list[str]] = {}
    for k in range(4):
        chains |= chain(10, prefix=f"k{k}x")
    fan = {"root": [], **{f"f{i:03d}": ["root"] for i in range(32)}}
    diamonds: dict[str, list[str]] = {"d00": []}
    for i in range(5):
        top, left, right, bottom = f"d{3 * i:02d}", f"d{3 * i + 1:02d}", f"d{3 * i + 2:02d}", f"d{3 * i + 3:02d}"
        diamonds |= {left: [top], right: [top], bottom: [left, right]}
    return [
        Scenario("chain of 20, concurrency 4", chain(20), 4),
        Scenario("4 chains of 10, concurrency 4", chains, 4),
        Scenario("wide: 48 independent, concurrency 8", {f"w{i:03d}": [] for i in range(48)}, 8),
        Scenario("fan: 1 -> 32, concurrency 8", fan, 8),
        Scenario("5 diamonds in series, concurrency 2", diamonds, 2),
        Scenario("20 independent, rpm 10, concurrency 10", {f"r{i:03d}": [] for i in range(20)}, 10, rpm=10),
    ]


def write_board(path: Path, scenario: Scenario, latency: float) -> None:
    lines = ['[film]\nprovider = "benchfake"\nduration = 4\n\n',
             f"[providers.benchfake]\nconcurrency = {scenario.concurrency}\nlatency = {latency}\n"]
    if scenario.rpm:
        lines.append(f"rpm = {scenario.rpm}\n")
    for shot, ups in scenario.deps.items():
        lines.append(f'\n[[shot]]\nid = "{shot}"\nprompt = "shot {shot}"\n')
        if len(ups) == 1:
            lines.append(f'continues = "{ups[0]}"\n')
        elif len(ups) == 2:
            lines.append(f'first_frame = {{ shot = "{ups[0]}", frame = "last" }}\n'
                         f'last_frame = {{ shot = "{ups[1]}", frame = "last" }}\n')
    path.write_text("".join(lines))


def depths(deps: dict[str, list[str]]) -> dict[str, int]:
    """Each shot's depth: the number of shots on the longest path above it."""
    found: dict[str, int] = {}

    def depth(shot: str) -> int:
        if shot not in found:
            found[shot] = max((depth(up) + 1 for up in deps[shot]), default=0)
        return found[shot]

    for shot in deps:
        depth(shot)
    return found


def bounds(scenario: Scenario, latency: float) -> tuple[float, float]:
    """The simple lower bound (max of three) and the tighter depth bound (also a lower bound)."""
    n, c = len(scenario.deps), scenario.concurrency
    level = depths(scenario.deps)
    critical = (max(level.values()) + 1) * latency
    rate = (n - 1) // int(scenario.rpm) * 60 + latency if scenario.rpm else 0.0
    simple = max(critical, n * latency / c, rate)
    tight = max(d * latency + sum(1 for v in level.values() if v >= d) * latency / c
                for d in range(max(level.values()) + 1))
    return simple, max(simple, tight)


@dataclass
class Result:
    makespan: float
    cpu: float
    overheads: list[float]
    """Per shot: seconds from the provider's return to the shot's commit."""
    dispatches: list[float]
    """Per shot with upstream shots: seconds from the last of them committing to its render starting."""


def run_once(scenario: Scenario, latency: float, root: Path) -> Result:
    folder = Path(tempfile.mkdtemp(dir=root))
    board = folder / "storyboard.toml"
    write_board(board, scenario, latency)
    project = open_project(board, cache_dir=folder / "cache")
    done: dict[str, float] = {}
    lock = threading.Lock()

    def on_event(shot: str, state: str, info: dict) -> None:
        if state == "done":
            with lock:
                done[shot] = time.monotonic()

    cpu, start = own_cpu(), time.monotonic()
    report = run(project.board, project.order, project.resolver(), project.lock,
                 jobs=scenario.concurrency, on_event=on_event)
    makespan = time.monotonic() - start
    cpu = own_cpu() - cpu
    if report.count(Outcome.RENDERED) != len(scenario.deps):
        raise SystemExit(f"{scenario.name}: not every shot rendered: {report.shots}")
    overheads = [done[s] - BenchFake.renders[s][1] for s in scenario.deps]
    dispatches = [BenchFake.renders[s][0] - max(done[u] for u in ups)
                  for s, ups in scenario.deps.items() if ups]
    shutil.rmtree(folder, ignore_errors=True)
    return Result(makespan, cpu, overheads, dispatches)


def main() -> None:
    global CLIP
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per render")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="scenarios whose name contains one of these")
    args = parser.parse_args()
    providers.BUILTIN["benchfake"] = f"{__name__}:BenchFake"
    chosen = [s for s in scenarios() if not args.only or any(o in s.name for o in args.only)]
    with tempfile.TemporaryDirectory(prefix="schedule-bench-") as tmp:
        root = Path(tmp)
        CLIP = root / "clip.mp4"
        run_ffmpeg(["-f", "lavfi", "-i", "color=c=0x336699:s=32x18:r=24:d=4", "-f", "lavfi", "-i",
                    "anullsrc=r=48000:cl=stereo", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-y", str(CLIP)])
        print(f"latency {args.latency} s, {args.repeat} runs each, {load()}\n")
        print(f"{'scenario':<42} {'shots':>5} {'bound':>7} {'tight':>7} {'makespan':>9} "
              f"{'ratio':>6} {'tight r':>7}  {'commit':>7} {'dispatch':>8} {'cpu/shot':>8}")
        for scenario in chosen:
            simple, tight = bounds(scenario, args.latency)
            results = [run_once(scenario, args.latency, root) for _ in range(args.repeat)]
            makespan = statistics.median(r.makespan for r in results)
            overheads = [o for r in results for o in r.overheads]
            dispatches = [d for r in results for d in r.dispatches] or [0.0]
            cpu = statistics.median(r.cpu for r in results) / len(scenario.deps)
            print(f"{scenario.name:<42} {len(scenario.deps):>5} {simple:>6.2f}s {tight:>6.2f}s "
                  f"{makespan:>8.2f}s {makespan / simple:>6.3f} {makespan / tight:>7.3f}  "
                  f"{1000 * statistics.median(overheads):>5.0f}ms {1000 * statistics.median(dispatches):>6.0f}ms "
                  f"{1000 * cpu:>6.0f}ms", flush=True)
            print(f"{'':<42} runs: " + ", ".join(f"{r.makespan:.2f}s" for r in results)
                  + f"; commit max {1000 * max(overheads):.0f} ms, dispatch max "
                  f"{1000 * max(dispatches):.0f} ms; {load()}", flush=True)
        print("\nratio = median makespan / simple bound; tight r = against the depth bound (they differ"
              " only when the DAG has a fan). commit = median seconds from a render's end to its shot's"
              " commit (probe, frames, cache); dispatch = median seconds from a shot's last upstream"
              " commit to its render's start; cpu/shot = this process's CPU per shot.")


if __name__ == "__main__":
    main()
