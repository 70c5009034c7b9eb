"""Time the stitcher on a finished edit: 20 trimmed clips, titles and text, per-cut transitions,
music under the dialogue; cold, after one trim changes, and with nothing changed.

Run: ``python benchmarks/edit_bench.py [--clips 20] [--seconds 8] [--size 640x360] [--keep DIR]
[--veo]``.
The clips are rendered once with ffmpeg (lavfi ``testsrc2`` + ``sine``, H.264 + AAC from one
encoder, as a provider's clips are). The timeline trims every clip, holds two, puts a title card
at each end and text over three clips, and joins them with cuts, crossfades, fades, dips, wipes
and slides in turn; music with ducking is placed under the whole film when the sound mixer
(``storyboard.edit.mix``) is present. Each case stitches with the real ``storyboard.cache.Cache``;
the re-stitches reuse the cold stitch's cache.

``--veo`` measures the smart cut instead: Veo-like clips at 720p (``moviepy_bench.MAIN``: x264
High, preset medium, 3 B-frames, AAC 48 kHz stereo 192k, with a keyframe every ``--keyint``
frames, 24 by default: x264's own 250 would make each 8 s clip one GOP), every clip trimmed at
both ends and two crossfades, nothing else; the frames copied and re-encoded are printed per case. Run it
again with ``PYTHONPATH=<a checkout of another commit>`` for that commit's figures on the same
clips (``--keep DIR`` keeps them; a commit without the smart cut prints no frame counts).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from _bench import load
from stitch_bench import cpu_seconds, describe

from storyboard.cache import Cache
from storyboard.edit.stitch import Profile, StitchStats, stitch
from storyboard.edit.timeline import ClipPiece, Join, Overlay, Sound, Timeline, TitlePiece
from storyboard.media import run_ffmpeg

JOINS = [Join(), Join("crossfade", 0.5), Join(), Join("wipeleft", 0.5), Join(),
         Join("dip", 0.5, "#ffffff"), Join(), Join("slideup", 0.5), Join("fade", 0.5)]


def render_clip(dest: Path, index: int, seconds: int, size: str) -> tuple[str, Path]:
    """One clip with a tone, distinct per index."""
    run_ffmpeg([
        "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=24:d={seconds},hue=h={index * 37 % 360}",
        "-f", "lavfi", "-i", f"sine=f={220 + 20 * index}:r=48000:d={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-bf", "0",
        "-c:a", "aac", "-b:a", "128k", "-shortest", str(dest),
    ])  # fmt: skip
    return hashlib.sha256(dest.read_bytes()).hexdigest(), dest


def reuse(path: Path) -> tuple[str, Path] | None:
    """A clip an earlier run rendered into ``--keep``, or None."""
    return (hashlib.sha256(path.read_bytes()).hexdigest(), path) if path.is_file() else None


def render_veo(dest: Path, index: int, seconds: int, keyint: int) -> tuple[str, Path]:
    """One Veo-like 720p clip with a tone and a keyframe every ``keyint`` frames (moviepy_bench's)."""
    from moviepy_bench import render_veo_like

    return render_veo_like(dest, index, seconds, keyint=keyint)


def render_music(dest: Path, seconds: float) -> tuple[str, Path]:
    """A chord as the music bed (WAV)."""
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"sine=f=196:r=48000:d={seconds}", "-f", "lavfi",
                "-i", f"sine=f=247:r=48000:d={seconds}", "-filter_complex", "amix=inputs=2",
                "-ac", "2", str(dest)])
    return hashlib.sha256(dest.read_bytes()).hexdigest(), dest


def has_mixer() -> bool:
    import importlib.util

    return importlib.util.find_spec("storyboard.edit.mix") is not None


def edit(clips: list[tuple[str, Path]], seconds: int, music: tuple[str, Path] | None) -> Timeline:
    """The benchmark's timeline over ``clips``."""
    pieces: list[ClipPiece | TitlePiece] = [TitlePiece("The Lighthouse Keeper", 3.0, name="title-1")]
    texts = {2: "Cape Wrath, 1899", 9: "Three days later", 15: "The storm"}
    for index, (sha, path) in enumerate(clips):
        in_ = 0.25 + 0.25 * (index % 4)
        out = seconds - 0.5 * (index % 3)
        overlays = (Overlay(texts[index], 0.5, 3.0),) if index in texts else ()
        pieces.append(ClipPiece(shot=f"shot{index:02d}", sha=sha, path=path, in_=in_, out=out,
                                hold=1.0 if index in (6, 13) else 0.0, overlays=overlays))
    pieces.append(TitlePiece("The End", 2.0, background="#101820", name="title-2"))
    joins = tuple(JOINS[i % len(JOINS)] for i in range(len(pieces) - 1))
    sounds = () if music is None else (
        Sound(music[1], music[0], start=2.0, gain_db=-6.0, fade_in=1.0, fade_out=2.0, duck=True),)
    return Timeline(tuple(pieces), joins, sounds, loudness=-14.0 if music else None)


def veo_edit(clips: list[tuple[str, Path]], seconds: int) -> Timeline:
    """Every clip trimmed at both ends (mid-GOP), crossfades at two joins, cuts elsewhere."""
    pieces = tuple(ClipPiece(shot=f"shot{index:02d}", sha=sha, path=path,
                             in_=0.3 + 0.1 * (index % 3), out=seconds - 0.4 - 0.2 * (index % 2))
                   for index, (sha, path) in enumerate(clips))
    fades = {len(clips) // 3, 2 * len(clips) // 3}
    return Timeline(pieces, tuple(Join("crossfade", 0.5) if i in fades else Join()
                                  for i in range(len(clips) - 1)))


def frames_made(stats: StitchStats) -> str:
    """``copied/encoded`` frames of the film, where this tree's StitchStats counts them."""
    if not hasattr(stats, "frames_copied"):
        return "n/a"
    return f"{stats.frames_copied}/{stats.frames_encoded}"


def timed(line: Timeline, out: Path, cache: Path, profile: Profile) -> tuple[float, float, StitchStats]:
    start, cpu = time.perf_counter(), cpu_seconds()
    stats = stitch(line, out, profile=profile, memo=Cache(cache))
    return time.perf_counter() - start, cpu_seconds() - cpu, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--veo", action="store_true", help="Veo-like 720p clips, trimmed, two "
                        "crossfades: the smart cut")
    parser.add_argument("--keyint", type=int, default=24, help="--veo clips' keyframe interval")
    args = parser.parse_args()
    if args.veo:
        args.size = "1280x720"
    width, height = (int(n) for n in args.size.split("x"))
    profile = Profile(width=width, height=height, fps=24)

    work = args.keep or Path(tempfile.mkdtemp(prefix="edit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        if args.veo:
            clips = [reuse(work / f"veo{i:02d}.mp4")
                     or render_veo(work / f"veo{i:02d}.mp4", i, args.seconds, args.keyint)
                     for i in range(args.clips)]
            line = veo_edit(clips, args.seconds)
            print(f"{args.clips} Veo-like clips of {args.seconds} s at 720p ready in "
                  f"{time.perf_counter() - start:.1f} s")
        else:
            clips = [render_clip(work / f"clip{i:02d}.mp4", i, args.seconds, args.size)
                     for i in range(args.clips)]
            music = (render_music(work / "score.wav", args.clips * args.seconds)
                     if has_mixer() else None)
            print(f"rendered {args.clips} clips of {args.seconds} s at {args.size} in "
                  f"{time.perf_counter() - start:.1f} s; music " + (
                      "with ducking" if music else "left out: storyboard.edit.mix is not in this tree"))
            line = edit(clips, args.seconds, music)
        middle = next(i for i in range(1 + args.clips // 2, len(line.pieces))  # a wipe after it
                      if line.joins[i].kind != "cut")
        trimmed = list(line.pieces)
        trimmed[middle] = replace(trimmed[middle], out=trimmed[middle].out - 0.5)  # type: ignore[union-attr]
        changed = replace(line, pieces=tuple(trimmed))
        cases = [("cold", line), (f"clip {middle} out -0.5 s", changed), ("nothing changed", changed)]
        rows = []
        shutil.rmtree(work / "cache", ignore_errors=True)  # every run starts cold
        for label, timeline in cases:
            out = work / f"film-{len(rows)}.mp4"
            seconds, cpu, stats = timed(timeline, out, work / "cache", profile)
            rows.append((label, seconds, cpu, stats, describe(out)))
        print(f"{load()}\n{'case':<24} {'wall':>7} {'cpu':>7}  {'conforms':>9}  {'parts':>7}  "
              f"{'windows':>7}  {'titles':>6}  {'copied/encoded':>14}  film")
        for label, seconds, cpu, stats, film in rows:
            conforms = f"{stats.conforms_encoded}+{stats.conforms_copied}+{stats.conforms_reused}"
            parts = f"{stats.parts_encoded}+{stats.parts_reused}"
            windows = f"{stats.windows_encoded}+{stats.windows_reused}"
            titles = f"{stats.titles_encoded}+{stats.titles_reused}"
            print(f"{label:<24} {seconds:>6.1f}s {cpu:>6.1f}s  {conforms:>9}  {parts:>7}  "
                  f"{windows:>7}  {titles:>6}  {frames_made(stats):>14}  {film}")
        print("\nconforms: encoded+copied+reused; parts, windows, titles: encoded+reused; "
              "copied/encoded: the film's frames from its clips' packets / from x264; "
              "cpu: user+sys of this process and its ffmpegs.")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
