"""Cut-only stitch of 20 clips of 8 s at 720p: storyboard against moviepy and the copy floor.

    python benchmarks/moviepy_bench.py [--clips 20] [--seconds 8] [--runs 3] [--odd 2]
                                       [--animatic-like] [--moviepy-python PATH] [--work DIR]
                                       [--storyboard-only]

By default the clips are Veo-like, as a provider returns H.264: lavfi ``testsrc2`` + a tone,
x264 High profile, preset medium (3 B-frames, b-pyramid, weighted prediction), yuv420p 24 fps,
AAC 48 kHz stereo 192 kb/s; ``--odd`` of them (2 by default, spread through the film) come from
a second setting, as a second provider's would (x264 preset fast, 2 B-frames, CRF 26, 25 fps,
AAC 128 kb/s). ``--animatic-like`` renders the old set instead (x264 veryfast without
B-frames, AAC 128 kb/s, one setting).

Three ways to the same film, side by side in one run:
- storyboard's ``stitch`` (into a fresh cache each run), which copies the clips of the main
  setting and conforms the odd ones to it;
- moviepy ``concatenate_videoclips`` + ``write_videofile`` with its defaults (libx264 preset
  medium, AAC), in its own virtual environment (default ``/tmp/mpvenv/bin/python``, made with
  ``python3 -m venv /tmp/mpvenv && /tmp/mpvenv/bin/pip install moviepy``), using the same ffmpeg
  build (imageio-ffmpeg's);
- the copy floor: ffmpeg's concat demuxer stream-copying every packet, video and audio (not a
  correct film when the clips differ, and each join of copied AAC drifts by its priming, but no
  stitcher that reads and writes every byte can be faster).
Every film is then checked with PyAV: streams, frames, video and audio durations.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import av
from _bench import children_cpu, load, own_cpu
from stitch_bench import PROFILE, render_clip

from storyboard.media import run_ffmpeg

from storyboard.cache import Cache
from storyboard.edit.stitch import Transition, stitch

MOVIEPY = """
import sys
from moviepy import VideoFileClip, concatenate_videoclips
out, *paths = sys.argv[1:]
clips = [VideoFileClip(p) for p in paths]
concatenate_videoclips(clips).write_videofile(out, fps=24, codec="libx264", audio_codec="aac",
                                              logger=None)
"""


MAIN = ("-c:v", "libx264", "-profile:v", "high", "-preset", "medium", "-bf", "3", "-r", "24",
        "-c:a", "aac", "-b:a", "192k")
SECOND = ("-c:v", "libx264", "-profile:v", "high", "-preset", "fast", "-bf", "2", "-crf", "26",
          "-r", "25", "-c:a", "aac", "-b:a", "128k")


def render_veo_like(dest: Path, index: int, seconds: int, odd: bool = False,
                    keyint: int | None = None) -> tuple[str, Path]:
    """One 720p clip with a tone, x264 High with B-frames + AAC 48 kHz stereo (see the docstring);
    `keyint`: a keyframe every so many frames (x264's default otherwise)."""
    hue, tone = (index * 37) % 360, 220 + 20 * index
    run_ffmpeg([
        "-y", "-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=24:d={seconds},hue=h={hue}",
        "-f", "lavfi", "-i", f"sine=f={tone}:r=48000:d={seconds}",
        *(SECOND if odd else MAIN), *(["-g", str(keyint)] if keyint else []),
        "-pix_fmt", "yuv420p", "-ar", "48000", "-ac", "2",
        "-shortest", str(dest),
    ])  # fmt: skip
    return hashlib.sha256(dest.read_bytes()).hexdigest(), dest


def reuse(path: Path) -> tuple[str, Path] | None:
    """A clip rendered by an earlier run into ``--work``, or None."""
    return (hashlib.sha256(path.read_bytes()).hexdigest(), path) if path.is_file() else None


def odd_indices(clips: int, odd: int) -> set[int]:
    """Which clips come from the second setting: ``odd`` of them, spread through the film."""
    return {round((k + 0.5) * clips / odd) for k in range(odd)} if odd else set()


def copy_floor(clips, out: Path, work: Path) -> None:
    """The concat demuxer copying every packet of every clip into one MP4."""
    listing = work / "floor.ffconcat"
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{p}'\n" for _, p in clips))
    run_ffmpeg(["-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                "-movflags", "+faststart", str(out)])


def breakdown(steps: list[tuple[float, str]], end: float) -> str:
    """Seconds spent in each kind of stitch step (the first word of its on_step line)."""
    spent: dict[str, float] = {}
    for (at, line), (after, _) in zip(steps, [*steps[1:], (end, "")], strict=True):
        kind = line.split()[0]
        spent[kind] = spent.get(kind, 0.0) + after - at
    return ", ".join(f"{kind} {seconds:.2f} s" for kind, seconds in spent.items())


def check(path: Path) -> str:
    """Streams, frame count and durations of a film, as PyAV decodes it."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        frames = sum(1 for _ in container.decode(video=0))
        seconds = float(video.duration * video.time_base)
        audio_seconds = float(audio.duration * audio.time_base)
        return (f"{video.codec_context.name} {video.codec_context.width}x{video.codec_context.height} "
                f"{video.codec_context.pix_fmt} + {audio.codec_context.name} {audio.rate} Hz: "
                f"{frames} frames, video {seconds:.3f} s, audio {audio_seconds:.3f} s "
                f"({(audio_seconds - seconds) * 1000:+.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="storyboard and copy-floor runs "
                        "(moviepy runs once per 3)")
    parser.add_argument("--odd", type=int, default=2, help="clips from a second setting")
    parser.add_argument("--animatic-like", action="store_true",
                        help="clips without B-frames from one setting (the old benchmark)")
    parser.add_argument("--moviepy-python", default="/tmp/mpvenv/bin/python")
    parser.add_argument("--work", type=Path, help="work in this folder and keep it; clips already "
                        "rendered there are reused")
    parser.add_argument("--storyboard-only", action="store_true",
                        help="time storyboard's stitch alone (no copy floor, no moviepy): for profiling")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="moviepy-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        odd = odd_indices(args.clips, 0 if args.animatic_like else args.odd)
        if args.animatic_like:
            clips = [reuse(work / f"animatic-{args.seconds}s-{i:02d}.mp4")
                     or render_clip(work / f"animatic-{args.seconds}s-{i:02d}.mp4", i, args.seconds)
                     for i in range(args.clips)]
            kind = "animatic-like (x264 veryfast, no B-frames)"
        else:
            names = [work / f"veo-{args.seconds}s-{'odd' if i in odd else 'main'}-{i:02d}.mp4"
                     for i in range(args.clips)]
            clips = [reuse(name) or render_veo_like(name, i, args.seconds, i in odd)
                     for i, name in enumerate(names)]
            kind = (f"Veo-like (x264 High medium, 3 B-frames, AAC 192k), {len(odd)} from a second "
                    f"setting (clips {', '.join(str(i + 1) for i in sorted(odd))})")
        print(f"rendered {args.clips} clips of {args.seconds} s at 720p, {kind}, "
              f"in {time.perf_counter() - start:.1f} s", flush=True)

        ours, ours_cpu = [], []
        for run in range(args.runs):
            out = work / f"storyboard-{run}.mp4"
            shutil.rmtree(work / f"cache-{run}", ignore_errors=True)  # a clean cache every run
            steps: list[tuple[float, str]] = []
            cpu, start = own_cpu() + children_cpu(), time.perf_counter()
            stats = stitch(clips, out, profile=PROFILE, transition=Transition(),
                           memo=Cache(work / f"cache-{run}"),
                           on_step=lambda line: steps.append((time.perf_counter(), line)))
            ours.append(time.perf_counter() - start)
            ours_cpu.append(own_cpu() + children_cpu() - cpu)
            print(f"storyboard stitch {run + 1}: {ours[-1]:.2f} s wall, {ours_cpu[-1]:.2f} s cpu, "
                  f"{stats.conforms_copied} copied, {stats.conforms_encoded} encoded; {load()}", flush=True)
            print("  " + breakdown(steps, start + ours[-1]))
        for line in stats.conformed:
            print(f"  conformed {line}")
        same = len({(work / f"storyboard-{run}.mp4").read_bytes() for run in range(args.runs)}) == 1
        print(f"  the {args.runs} storyboard films are {'' if same else 'NOT '}byte-identical")
        if args.storyboard_only:
            print(f"storyboard film: {check(work / 'storyboard-0.mp4')}\n"
                  f"median {statistics.median(ours):.2f} s wall, {statistics.median(ours_cpu):.2f} s cpu")
            return

        floor, floor_cpu = [], []
        for run in range(args.runs):
            out = work / f"floor-{run}.mp4"
            cpu, start = children_cpu(), time.perf_counter()
            copy_floor(clips, out, work)
            floor.append(time.perf_counter() - start)
            floor_cpu.append(children_cpu() - cpu)
        print(f"copy floor: {statistics.median(floor):.2f} s wall, "
              f"{statistics.median(floor_cpu):.2f} s cpu (median of {args.runs}); {load()}", flush=True)

        theirs, theirs_cpu = [], []
        for run in range(max(1, args.runs // 3)):
            out = work / f"moviepy-{run}.mp4"
            cpu, start = children_cpu(), time.perf_counter()
            subprocess.run([args.moviepy_python, "-c", MOVIEPY, str(out), *(str(p) for _, p in clips)],
                           check=True)
            theirs.append(time.perf_counter() - start)
            theirs_cpu.append(children_cpu() - cpu)
            print(f"moviepy {run + 1}: {theirs[-1]:.2f} s wall, {theirs_cpu[-1]:.2f} s cpu; {load()}", flush=True)

        print(f"\nstoryboard film: {check(work / 'storyboard-0.mp4')}")
        print(f"moviepy film:    {check(work / 'moviepy-0.mp4')}")
        print(f"copy floor film: {check(work / 'floor-0.mp4')}")
        med, med_cpu = statistics.median(ours), statistics.median(ours_cpu)
        mp, mp_cpu = statistics.median(theirs), statistics.median(theirs_cpu)
        print(f"\n{'':<12}{'wall s':>9}{'cpu s':>9}{'vs moviepy (wall / cpu)':>26}")
        for name, wall, cpu in (("storyboard", med, med_cpu), ("moviepy", mp, mp_cpu),
                                ("copy floor", statistics.median(floor), statistics.median(floor_cpu))):
            print(f"{name:<12}{wall:>9.2f}{cpu:>9.2f}{mp / wall:>17.1f}x / {mp_cpu / cpu:.1f}x")
        print(load())
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
