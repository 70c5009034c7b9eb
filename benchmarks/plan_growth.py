"""Planning growth: ``storyboard plan`` on 10,000 shots against 1,000 (linear is a ratio of 10).

    python benchmarks/plan_growth.py [--sizes 1000 10000] [--runs 3] [--cached] [--profile FILE]
                                     [--work DIR]

Boards come from ``noop_build.make_board`` (chains of 10 shots joined by ``continues``, every
tenth shot in the film). Two measures per size, each in a fresh process:

* library: ``open_project`` + ``plan_project`` timed inside the process (no start-up);
* cli: ``storyboard plan FILE`` as a subprocess (start-up and the printed table included).

Without ``--cached`` nothing is in the cache: every shot is new, and a shot whose upstream is not
cached is planned as "upstream reruns". With ``--cached`` every shot of each board is first
rendered with the bench provider of ``noop_build`` through the executor (not stitched: a film of
1,000 clips would dominate), so every key is computed from its upstream's frame digest and every
action is looked up; that takes about 40 minutes at 10,000 shots, so ``--work DIR`` keeps the
boards and caches in DIR, and a later run with the same DIR renders only what is missing.
``--profile FILE`` writes a cProfile of the library measure on the largest size and prints its
top functions.
"""

from __future__ import annotations

import argparse
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import Timings, compile_package, load, run_timed
from noop_build import make_board, make_clip, make_site

LIBRARY = """
import sys, time
from storyboard.build import open_project, plan_project
start = time.perf_counter()
steps, _ = plan_project(open_project(sys.argv[1]))
print(time.perf_counter() - start, len(steps))
"""

POPULATE = """
import sys
from storyboard.build import open_project
from storyboard.executor import run
project = open_project(sys.argv[1])
run(project.board, project.order, project.resolver(), project.lock, jobs=2)
project.cache.save_digests()
"""

PROFILED = """
import cProfile, sys
from storyboard.build import open_project, plan_project
cProfile.run("plan_project(open_project(sys.argv[1]))", sys.argv[2])
"""


def library_timings(board: Path, env: dict[str, str], runs: int) -> Timings:
    """In-process seconds of open_project + plan_project, one fresh interpreter per run."""
    timings = Timings()
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", LIBRARY, str(board)], env=env, check=True,
                              capture_output=True, text=True)
        seconds, _ = proc.stdout.split()
        timings.wall.append(float(seconds))
        timings.cpu.append(float("nan"))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cached", action="store_true", help="build each board first (slow)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the largest plan here")
    parser.add_argument("--work", type=Path, help="keep the boards and caches here (and reuse them)")
    args = parser.parse_args()
    compile_package()  # timed runs load bytecode, as an installed storyboard does
    with tempfile.TemporaryDirectory(prefix="plan-growth-") as tmp:
        root = args.work or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        clip = root / "clip.mp4"
        if not clip.exists():
            make_clip(clip)
        site = root / "site" if (root / "site").exists() else make_site(root, clip)
        env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        results = {}
        for size in args.sizes:
            board = root / f"b{size}" / "storyboard.toml"
            board.parent.mkdir(exist_ok=True)
            make_board(board, size)
            if args.cached:
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", POPULATE, str(board)], env=env, check=True)
                print(f"populate: {size} shots rendered in {time.perf_counter() - start:.1f} s", flush=True)
            lib = library_timings(board, env, args.runs)
            cli = run_timed([sys.executable, "-m", "storyboard", "plan", str(board)], env=env, runs=args.runs)
            results[size] = (lib, cli)
            print(f"{size:>6} shots: library {lib.median:.3f} s (runs "
                  + ", ".join(f"{t:.3f}" for t in lib.wall) + f"); cli {cli.row()}; {load()}", flush=True)
        small, large = min(args.sizes), max(args.sizes)
        if small != large:
            print(f"\n{large} / {small} shots: library {results[large][0].median / results[small][0].median:.1f}x, "
                  f"cli {results[large][1].median / results[small][1].median:.1f}x "
                  f"(cli cpu {results[large][1].cpu_median / results[small][1].cpu_median:.1f}x); "
                  f"linear = {large / small:.0f}x")
        if args.profile:
            board = root / f"b{large}" / "storyboard.toml"
            subprocess.run([sys.executable, "-c", PROFILED, str(board), str(args.profile)], env=env, check=True)
            print(f"\ncProfile of plan_project(open_project(...)) on {large} shots, top 25 by own time:")
            pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
