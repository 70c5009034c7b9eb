"""Time the stitcher on 20 clips of 8 s at 720p: cuts, crossfades, and a re-stitch after one edit.

Run: ``python benchmarks/stitch_bench.py [--clips 20] [--seconds 8] [--bframes] [--keep DIR]``.
The clips are rendered once with ffmpeg (lavfi ``testsrc2`` + ``sine``, H.264 + AAC like a
provider's MP4, all from one encoder with one setting, as a real film's clips are), then each case
stitches into a fresh cache (the real ``storyboard.cache.Cache``) except the re-stitches, which
reuse the crossfade's cache with one middle clip replaced. The last case re-stitches the unchanged
film in a new Python process, as a later ``storyboard build`` would: nothing the first stitches
learned in memory (a clip's facts, its keyframes) helps it, only the cache.

By default the clips have no B-frames (as the animatic's); ``--bframes`` renders them with x264's
default B-frames instead. The cut film copies their video either way (since the stitcher copies
B-frame clips); crossfades re-encode every clip.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import resource
import shutil
import tempfile
import time
from pathlib import Path

from _bench import load

from storyboard.cache import Cache
from storyboard.media import probe, run_ffmpeg
from storyboard.edit.stitch import Profile, StitchStats, Transition, stitch

PROFILE = Profile(width=1280, height=720, fps=24)


def render_clip(dest: Path, index: int, seconds: int, variant: int = 0,
                bframes: bool = False) -> tuple[str, Path]:
    """One 720p clip with a tone, distinct per index (and per variant); B-frames only if asked."""
    hue = (index * 37 + variant * 90) % 360
    tone = 220 + 20 * index + 7 * variant
    run_ffmpeg([
        "-y", "-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=24:d={seconds},hue=h={hue}",
        "-f", "lavfi", "-i", f"sine=f={tone}:r=48000:d={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
        *(() if bframes else ("-bf", "0")),
        "-c:a", "aac", "-b:a", "128k", "-shortest", str(dest),
    ])  # fmt: skip
    return hashlib.sha256(dest.read_bytes()).hexdigest(), dest


def cpu_seconds() -> float:
    """CPU time used so far by this process and the ffmpeg processes it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(clips, out: Path, cache_dir: Path, transition: Transition) -> tuple[float, float, StitchStats]:
    """Wall-clock and CPU seconds of one stitch, and its stats."""
    start, cpu = time.perf_counter(), cpu_seconds()
    stats = stitch(clips, out, profile=PROFILE, transition=transition, memo=Cache(cache_dir))
    return time.perf_counter() - start, cpu_seconds() - cpu, stats


def timed_fresh(clips, out: Path, cache_dir: Path, transition: Transition) -> tuple[float, float, StitchStats]:
    """``timed`` in a new Python process (its own wall and CPU around the stitch, imports apart)."""
    job = json.dumps({"clips": [[sha, str(path)] for sha, path in clips], "out": str(out),
                      "cache": str(cache_dir), "kind": transition.kind, "duration": transition.duration})
    proc = subprocess.run([sys.executable, __file__, "--child", job], capture_output=True, text=True,
                          check=True, env=os.environ)
    seconds, cpu, stats = json.loads(proc.stdout.strip().splitlines()[-1])
    return seconds, cpu, StitchStats(**stats)


def child(job: str) -> None:
    """The fresh process of ``timed_fresh``: stitch, and print wall, CPU and stats as JSON."""
    from dataclasses import asdict

    spec = json.loads(job)
    clips = [(sha, Path(path)) for sha, path in spec["clips"]]
    seconds, cpu, stats = timed(clips, Path(spec["out"]), Path(spec["cache"]),
                                Transition(spec["kind"], spec["duration"]))
    print(json.dumps([seconds, cpu, asdict(stats)]))


def describe(out: Path) -> str:
    info = probe(out)
    drift_ms = ((info.audio_duration or 0.0) - info.duration) * 1000
    return f"{info.frames} frames, {info.duration:.3f} s, audio {drift_ms:+.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--crossfade", type=float, default=0.5)
    parser.add_argument("--bframes", action="store_true",
                        help="render the clips with B-frames")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    work = args.keep or Path(tempfile.mkdtemp(prefix="stitch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        clips = [render_clip(work / f"clip{i:02d}.mp4", i, args.seconds, bframes=args.bframes)
                 for i in range(args.clips)]
        middle = args.clips // 2
        changed = list(clips)
        changed[middle] = render_clip(work / "changed.mp4", middle, args.seconds, variant=1,
                                      bframes=args.bframes)
        print(f"rendered {args.clips + 1} clips of {args.seconds} s at 720p "
              f"({'with' if args.bframes else 'no'} B-frames) in {time.perf_counter() - start:.1f} s\n")

        fade = Transition("crossfade", args.crossfade)
        cases = [
            ("cut, clean cache", clips, "cut", Transition()),
            (f"crossfade {args.crossfade} s, clean cache", clips, "xfade", fade),
            ("crossfade, one middle clip changed", changed, "xfade", fade),
            ("crossfade, nothing changed", changed, "xfade", fade),
            ("same, nothing changed, new process", changed, "xfade", fade),
        ]
        rows = []
        for label, sequence, cache_name, transition in cases:
            out = work / f"film-{len(rows)}.mp4"
            how = timed_fresh if label.endswith("new process") else timed
            seconds, cpu, stats = how(sequence, out, work / f"cache-{cache_name}", transition)
            rows.append((label, seconds, cpu, stats, describe(out)))

        print(f"{load()}\n{'case':<38} {'wall':>7} {'cpu':>7}  {'conforms':>9}  {'windows':>8}  film")
        for label, seconds, cpu, stats, film in rows:
            conforms = f"{stats.conforms_encoded}+{stats.conforms_copied}+{stats.conforms_reused}"
            windows = f"{stats.windows_encoded}+{stats.windows_reused}"
            print(f"{label:<38} {seconds:>6.1f}s {cpu:>6.1f}s  {conforms:>9}  {windows:>8}  {film}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print("\nconforms: encoded+copied+reused; windows: encoded+reused; "
              "cpu: user+sys of this process and its ffmpegs.\n"
              f"Peak memory of any ffmpeg process (including clip rendering): {peak:.0f} MB")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
