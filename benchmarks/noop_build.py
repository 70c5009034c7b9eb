"""No-op build of a generated 1,000-shot board, all cached, including process start-up.

    python benchmarks/noop_build.py [--shots 1000] [--runs 10] [--snakemake PATH]
                                    [--work DIR] [--baseline CHECKOUT]

Populates the cache the fastest honest way: a plugin provider (registered through a real
`storyboard.providers` entry point in a temporary site folder) that copies one pre-rendered tiny
clip; the executor still probes it, extracts its frames and commits each shot. Then it times
`storyboard build` as a subprocess: the stamp fast path (nothing changed), and the full check
with the stamp removed (load, validate, graph, every key computed and its action looked up).

Side by side, Snakemake's dry run (`snakemake -n`) of a generated Snakefile with the same jobs and
edges (one wildcard rule for the shots, one for the film): the workflow is first run for real
(each job touches its output), so every output exists, is newer than its inputs and has
Snakemake's own metadata, and the dry run has nothing to do. `--snakemake` defaults to
`snakemake` on PATH; without one that row is skipped.

`--work DIR` keeps the board, its cache and the provider in DIR and reuses them (populated only
once: 10,000 shots take minutes). `--baseline CHECKOUT` times another checkout of storyboard
(e.g. `git worktree add /tmp/base COMMIT`; its package first on PYTHONPATH, its bytecode compiled)
on the same board, alternating run by run with this one, so both see the same load.

`--instructions` (with `--baseline`) also counts the instructions each side's plan and full check
execute, under valgrind's callgrind with PYTHONHASHSEED=0: on a shared virtual machine whose wall
times drift by 10-20 % from one minute to the next, that count is the same from run to run, so a
change of a few per cent shows (it leaves out what waits: system calls and cache misses).
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

from _bench import Timings, compile_package, load, run_timed

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


def edges(shots: int) -> tuple[dict[str, list[str]], list[str]]:
    """The generated board's shape: shot -> upstream shots (chains of 10), and the film's sequence."""
    deps = {f"s{i:05d}": [f"s{i - 1:05d}"] if i % 10 else [] for i in range(shots)}
    return deps, [f"s{i:05d}" for i in range(0, shots, 10)]


def make_board(path: Path, shots: int) -> None:
    deps, sequence = edges(shots)
    lines = ['[film]\nprovider = "bench"\nduration = 4\n\n[vars]\nhero = "a fox"\n']
    for i, (shot, ups) in enumerate(deps.items()):
        lines.append(f'[[shot]]\nid = "{shot}"\nprompt = "{{{{ hero }}}} in scene {i}"\n')
        if ups:
            lines.append(f'continues = "{ups[0]}"\n')
    lines.append("\n[edit]\nsequence = [" + ", ".join(f'"{s}"' for s in sequence) + "]\n")
    path.write_text("".join(lines))


SNAKEFILE = """\
DEPS = {deps!r}
SEQUENCE = {sequence!r}

wildcard_constraints:
    shot="s[0-9]+"

rule all:
    input: "film.mp4", expand("clips/{{shot}}.mp4", shot=list(DEPS))

rule film:
    input: expand("clips/{{shot}}.mp4", shot=SEQUENCE)
    output: "film.mp4"
    shell: "touch {{output}}"

rule shot:
    input: lambda w: [f"clips/{{up}}.mp4" for up in DEPS[w.shot]]
    output: "clips/{{shot}}.mp4"
    shell: "touch {{output}}"
"""


def renders_nothing(output: str) -> bool:
    """A no-op build's output: no shot rendered, the film not stitched again."""
    return "rendered" not in output and "stitched)" not in output


def snakemake_noop(snakemake: str, root: Path, shots: int, runs: int) -> Timings:
    """Run the equivalent workflow once for real, then time its dry run (which must find nothing)."""
    folder = root / "snake"
    folder.mkdir()
    deps, sequence = edges(shots)
    (folder / "Snakefile").write_text(SNAKEFILE.format(deps=deps, sequence=sequence))
    start = time.perf_counter()
    subprocess.run([snakemake, "--cores", "2", "--quiet", "all"], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"populate: snakemake ran {shots + 1} jobs in {time.perf_counter() - start:.1f} s")
    return run_timed([snakemake, "-n", "--cores", "1"], cwd=str(folder), runs=runs,
                     check_output=lambda text: "Nothing to be done" in text)


def populated(root: Path, shots: int) -> tuple[Path, Path]:
    """(board, provider site) in `root`, every shot built once (skipped when a build finished before)."""
    clip, board = root / "clip.mp4", root / "board" / "storyboard.toml"
    if not clip.exists():
        make_clip(clip)
    site = root / "site" if (root / "site").exists() else make_site(root, clip)
    if not board.exists():
        board.parent.mkdir(parents=True, exist_ok=True)
        make_board(board, shots)
    if not (board.parent / ".storyboard" / "stamps").exists():
        env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "storyboard", "build", str(board), "--jobs", "2"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        print(f"populate: {shots} shots built in {time.perf_counter() - start:.1f} s")
    return board, site


def alternating(envs: list[dict[str, str]], cmd: list[str], runs: int, cwd: Path,
                **kwargs: object) -> list[Timings]:
    """`cmd` timed under each env in turn, run after run: both sides see the same load."""
    out = [Timings() for _ in envs]
    for _ in range(runs):
        for timings, env in zip(out, envs):
            # from the board's folder: `python -m` puts the current folder first on sys.path, so a run
            # from a checkout would import that checkout's storyboard whatever PYTHONPATH says
            one = run_timed(cmd, env=env, runs=1, cwd=str(cwd), **kwargs)  # type: ignore[arg-type]
            timings.wall += one.wall
            timings.cpu += one.cpu
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--snakemake", default=shutil.which("snakemake"),
                        help="snakemake executable to compare with (default: snakemake on PATH)")
    parser.add_argument("--work", type=Path, help="keep the board and its cache here (and reuse them)")
    parser.add_argument("--baseline", type=Path, help="another checkout to time alternately on the same board")
    parser.add_argument("--instructions", action="store_true",
                        help="with --baseline: count each side's instructions too (valgrind)")
    args = parser.parse_args()
    compile_package()  # timed runs load bytecode, as an installed storyboard does
    if args.baseline:
        compile_package(args.baseline / "storyboard")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        board, site = populated(root, args.shots)
        env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        exe = [sys.executable, "-m", "storyboard"]
        if args.baseline:
            compare(args, board, env, exe)
            return
        fast = run_timed([*exe, "build", str(board)], env=env, runs=args.runs, check_output=renders_nothing)
        stamps = board.parent / ".storyboard" / "stamps"
        full = run_timed([*exe, "build", str(board)], env=env, runs=max(3, args.runs // 3),
                         before=lambda: shutil.rmtree(stamps, ignore_errors=True), check_output=renders_nothing)
        plan = run_timed([*exe, "plan", str(board)], env=env, runs=max(3, args.runs // 3))
        rows = [("storyboard build, no-op (stamp)", fast),
                ("storyboard build, no-op (full check)", full),
                ("storyboard plan", plan)]
        if args.snakemake:
            rows.append(("snakemake -n (same jobs and edges)",
                         snakemake_noop(args.snakemake, root, args.shots, max(3, args.runs // 2))))
        else:
            print("snakemake: not found (pass --snakemake PATH); its row is skipped")
        print(f"\n{args.shots} shots, {load()}")
        for name, times in rows:
            print(f"{name:<38} {times.row()}")
        if args.snakemake:
            snake = rows[-1][1].median
            print(f"\nsnakemake -n / storyboard no-op: {snake / fast.median:.1f}x (stamp), "
                  f"{snake / full.median:.1f}x (full check)")


def compare(args: argparse.Namespace, board: Path, env: dict[str, str], exe: list[str]) -> None:
    """This checkout against `--baseline`, alternating: plan, the full check, the stamp path."""
    here = str(Path(__file__).resolve().parent.parent)
    envs = [{**env, "PYTHONPATH": f"{args.baseline}{os.pathsep}{env['PYTHONPATH']}"},
            {**env, "PYTHONPATH": f"{here}{os.pathsep}{env['PYTHONPATH']}"}]
    stamps = board.parent / ".storyboard" / "stamps"
    runs = max(3, args.runs)
    rows = [("storyboard plan", alternating(envs, [*exe, "plan", str(board)], runs, board.parent)),
            ("build, no-op (full check)", alternating(envs, [*exe, "build", str(board)], runs, board.parent,
                                                      before=lambda: shutil.rmtree(stamps, ignore_errors=True),
                                                      check_output=renders_nothing)),
            ("build, no-op (stamp)", alternating(envs, [*exe, "build", str(board)], runs, board.parent,
                                                 check_output=renders_nothing))]
    print(f"\n{args.shots} shots, alternating runs; {load()}")
    for name, (before, after) in rows:
        print(f"{name:<28} baseline {before.row()}\n{'':<28} this     {after.row()}\n"
              f"{'':<28} CPU {before.cpu_median / after.cpu_median:.2f}x less, "
              f"wall {before.median / after.median:.2f}x less")
    if args.instructions:
        no_stamp = lambda: shutil.rmtree(stamps, ignore_errors=True)  # noqa: E731
        for name, command, before in (("storyboard plan", "plan", None),
                                      ("build, no-op (full check)", "build", no_stamp)):
            counts = [instructions([*exe, command, str(board)], side, board.parent, before) for side in envs]
            print(f"{name:<28} instructions: baseline {counts[0] / 1e6:,.1f} M, this {counts[1] / 1e6:,.1f} M "
                  f"({counts[0] / counts[1]:.3f}x fewer)")


def instructions(cmd: list[str], env: dict[str, str], cwd: Path, before: object = None) -> int:
    """How many instructions `cmd` executes, as valgrind's callgrind counts them (hash seed fixed)."""
    if callable(before):
        before()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", *cmd],
                              env={**env, "PYTHONHASHSEED": "0"}, cwd=cwd, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"valgrind {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(found.group(1))


if __name__ == "__main__":
    main()
