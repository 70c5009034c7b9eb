"""No-op build of a generated 1,000-shot board, all cached, including process start-up.

    python benchmarks/noop_build.py [--shots 1000] [--runs 10]

Populates the cache the fastest honest way: a plugin provider (registered through a real
`storyboard.providers` entry point in a temporary site folder) that copies one pre-rendered tiny
clip; the executor still probes it, extracts its frames and commits each shot. Then it times
`storyboard build` as a subprocess: the stamp fast path (nothing changed), and the full check
with the stamp removed (load, validate, graph, every key computed and its action looked up).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PROVIDER = '''
import shutil
from storyboard.job import Capabilities, Price, RenderResult
from storyboard.providers import ProviderSettings

class BenchProvider:
    name = "bench"; default_model = "bench-1"; key_env = (); Settings = ProviderSettings
    labels_output = False
    def __init__(self, settings=None, **kw): pass
    def capabilities(self, model): return Capabilities()
    def price(self, job): return Price(0.0)
    def render(self, job, dest, ctx):
        shutil.copyfile(CLIP, dest)
        return RenderResult(cost=Price(0.0))
'''


def make_site(root: Path, clip: Path) -> Path:
    site = root / "site"
    dist = site / "bench_provider-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-provider\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[storyboard.providers]\nbench = bench_provider:BenchProvider\n")
    (site / "bench_provider.py").write_text(f"CLIP = {str(clip)!r}\n" + PROVIDER)
    return site


def make_clip(path: Path) -> None:
    from storyboard.media import run_ffmpeg

    run_ffmpeg(["-f", "lavfi", "-i", "color=c=0x336699:s=32x18:r=24:d=4", "-f", "lavfi", "-i",
                "anullsrc=r=48000:cl=stereo", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast",
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-y", str(path)])


def make_board(path: Path, shots: int) -> None:
    lines = ['[film]\nprovider = "bench"\nduration = 4\n\n[vars]\nhero = "a fox"\n']
    for i in range(shots):
        lines.append(f'[[shot]]\nid = "s{i:05d}"\nprompt = "{{{{ hero }}}} in scene {i}"\n')
        if i % 10:
            lines.append(f'continues = "s{i - 1:05d}"\n')
    lines.append('\n[edit]\nsequence = [' + ", ".join(f'"s{i:05d}"' for i in range(0, shots, 10)) + "]\n")
    path.write_text("".join(lines))


def timed(cmd: list[str], env: dict[str, str], runs: int, before=None) -> list[float]:
    times = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = root / "clip.mp4"
        make_clip(clip)
        site = make_site(root, clip)
        board = root / "board" / "storyboard.toml"
        board.parent.mkdir()
        make_board(board, args.shots)
        env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        exe = [sys.executable, "-m", "storyboard"]
        start = time.perf_counter()
        subprocess.run([*exe, "build", str(board), "--jobs", "2"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"populate: {args.shots} shots built in {time.perf_counter() - start:.1f} s")
        fast = timed([*exe, "build", str(board)], env, args.runs)
        stamps = board.parent / ".storyboard" / "stamps"
        full = timed([*exe, "build", str(board)], env, max(3, args.runs // 3),
                     before=lambda: shutil.rmtree(stamps, ignore_errors=True))
        plan = timed([*exe, "plan", str(board)], env, max(3, args.runs // 3))
        print(f"{'case':<40} {'median s':>9} {'min s':>7}")
        for name, times in ((f"no-op build, {args.shots} shots (stamp)", fast),
                            (f"no-op build, {args.shots} shots (full check)", full),
                            (f"plan, {args.shots} shots", plan)):
            print(f"{name:<40} {statistics.median(times):>9.3f} {min(times):>7.3f}")


if __name__ == "__main__":
    main()
