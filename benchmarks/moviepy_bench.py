"""Cut-only stitch of 20 clips of 8 s at 720p: storyboard against moviepy, on the same clips.

    python benchmarks/moviepy_bench.py [--clips 20] [--seconds 8] [--runs 3] [--moviepy-python PATH]

The clips come from ``stitch_bench.render_clip``: lavfi ``testsrc2`` + ``sine``, H.264 (x264
veryfast, no B-frames) yuv420p 24 fps + AAC, all from one encoder with one setting, as a real
film's clips are (a provider's clips share their encoder); so storyboard's cut path copies their
video. moviepy runs in its own virtual environment (default ``/tmp/mpvenv/bin/python``, made with
``python3 -m venv /tmp/mpvenv && /tmp/mpvenv/bin/pip install moviepy``) as
``concatenate_videoclips`` + ``write_videofile`` with its defaults (libx264 preset medium, AAC);
it uses the same ffmpeg build (imageio-ffmpeg's). Both films are then checked with PyAV:
streams, frames, video and audio durations. Each storyboard run stitches into a fresh cache.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import av
from _bench import children_cpu, load, own_cpu
from stitch_bench import PROFILE, render_clip

from storyboard.cache import Cache
from storyboard.stitch import Transition, stitch

MOVIEPY = """
import sys
from moviepy import VideoFileClip, concatenate_videoclips
out, *paths = sys.argv[1:]
clips = [VideoFileClip(p) for p in paths]
concatenate_videoclips(clips).write_videofile(out, fps=24, codec="libx264", audio_codec="aac",
                                              logger=None)
"""


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
    parser.add_argument("--runs", type=int, default=3, help="storyboard stitches (moviepy runs once per 3)")
    parser.add_argument("--moviepy-python", default="/tmp/mpvenv/bin/python")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moviepy-bench-"))
    try:
        start = time.perf_counter()
        clips = [render_clip(work / f"clip{i:02d}.mp4", i, args.seconds) for i in range(args.clips)]
        print(f"rendered {args.clips} clips of {args.seconds} s at 720p in {time.perf_counter() - start:.1f} s")

        ours, ours_cpu = [], []
        for run in range(args.runs):
            out = work / f"storyboard-{run}.mp4"
            cpu, start = own_cpu() + children_cpu(), time.perf_counter()
            stats = stitch(clips, out, profile=PROFILE, transition=Transition(),
                           memo=Cache(work / f"cache-{run}"))
            ours.append(time.perf_counter() - start)
            ours_cpu.append(own_cpu() + children_cpu() - cpu)
            print(f"storyboard stitch {run + 1}: {ours[-1]:.2f} s wall, {ours_cpu[-1]:.2f} s cpu, "
                  f"{stats.conforms_copied} copied, {stats.conforms_encoded} encoded; {load()}", flush=True)

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
        wall = statistics.median(theirs) / statistics.median(ours)
        cpu = statistics.median(theirs_cpu) / statistics.median(ours_cpu)
        print(f"\nstoryboard median {statistics.median(ours):.2f} s wall / {statistics.median(ours_cpu):.2f} s cpu; "
              f"moviepy median {statistics.median(theirs):.1f} s wall / {statistics.median(theirs_cpu):.1f} s cpu")
        print(f"storyboard is {wall:.0f}x faster (wall), {cpu:.0f}x less CPU; {load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
