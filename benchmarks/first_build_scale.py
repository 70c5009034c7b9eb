"""First build at scale: `storyboard build` of 10,000 new shots against 1,000 (linear is a ratio of 10).

    python benchmarks/first_build_scale.py [--sizes 1000 10000] [--jobs 2] [--work DIR]

Boards come from ``noop_build.make_board`` (chains of 10 shots joined by ``continues``: every
shot but the first of a chain starts on its upstream's last frame), with the film cut down to
its first 10 sequence entries so the stitch stays the same size and the figure is the
executor's: schedule, render (the bench provider of ``noop_build`` copies one tiny clip), probe,
last-GOP frame extraction, cache commit and the lock's append log, per shot. Each size builds
into an empty cache, as a subprocess, start-up included; then, on the built board, the full no-op
check (`storyboard build` with the stamp removed) and `storyboard plan` (all cached), 3 runs each.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import children_cpu, compile_package, load, run_timed
from noop_build import make_board, make_clip, make_site, renders_nothing

FILM_CLIPS = 10


def make_scale_board(path: Path, shots: int) -> None:
    """noop_build's board, its film cut to the first FILM_CLIPS sequence entries."""
    make_board(path, shots)
    text = path.read_text()
    sequence = re.search(r"sequence = \[(.*)\]", text)
    assert sequence is not None
    kept = ", ".join(sequence.group(1).split(", ")[:FILM_CLIPS])
    path.write_text(text[:sequence.start(1)] + kept + text[sequence.end(1):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, help="keep the boards and caches here")
    args = parser.parse_args()
    compile_package()  # timed runs load bytecode, as an installed storyboard does
    with tempfile.TemporaryDirectory(prefix="first-build-") as tmp:
        root = args.work or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        clip = root / "clip.mp4"
        make_clip(clip)
        site = make_site(root / f"site-{os.getpid()}", clip)
        env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        results: dict[int, tuple[float, float]] = {}
        plans = {}
        for size in args.sizes:
            board = root / f"first{size}" / "storyboard.toml"
            shutil.rmtree(board.parent, ignore_errors=True)
            board.parent.mkdir(parents=True)
            make_scale_board(board, size)
            cmd = [sys.executable, "-m", "storyboard", "build", str(board), "--jobs", str(args.jobs), "--quiet"]
            cpu, start = children_cpu(), time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall, used = time.perf_counter() - start, children_cpu() - cpu
            if proc.returncode != 0 or f"{size} rendered" not in proc.stdout:
                raise SystemExit(f"first build of {size} shots failed:\n{proc.stdout}\n{proc.stderr}")
            results[size] = (wall, used)
            print(f"{size:>6} shots: first build {wall:.1f} s (cpu {used:.1f} s, {1000 * wall / size:.1f} ms a "
                  f"shot); {load()}", flush=True)
            stamps = board.parent / ".storyboard" / "stamps"
            full = run_timed([sys.executable, "-m", "storyboard", "build", str(board)], env=env, runs=3,
                             before=lambda stamps=stamps: shutil.rmtree(stamps, ignore_errors=True),
                             check_output=renders_nothing)
            print(f"{size:>6} shots: no-op build, full check (stamp removed) {full.row()}", flush=True)
            plan = run_timed([sys.executable, "-m", "storyboard", "plan", str(board)], env=env, runs=3)
            plans[size] = plan
            print(f"{size:>6} shots: storyboard plan, all cached {plan.row()}", flush=True)
        small, large = min(args.sizes), max(args.sizes)
        if small != large:
            print(f"\nfirst build {large} / {small} shots: {results[large][0] / results[small][0]:.1f}x wall, "
                  f"{results[large][1] / results[small][1]:.1f}x cpu "
                  f"(linear = {large / small:.0f}x, target <= {1.1 * large / small:.0f}x)")
            print(f"storyboard plan {large} / {small} shots: {plans[large].median / plans[small].median:.1f}x wall, "
                  f"{plans[large].cpu_median / plans[small].cpu_median:.1f}x cpu")


if __name__ == "__main__":
    main()
