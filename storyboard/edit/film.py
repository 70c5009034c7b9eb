"""The film node: its key over the timeline, the stitch, and the output file (and its subtitles).

The film's key is the timeline's ``key_fields`` (clip hashes, trims, joins, titles, text, sound,
subtitles, loudness), the film's format and the stitcher's versions: editing the timeline never
touches a shot's key, only this one.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.cache import Cache, cache_key
from storyboard.errors import CacheError, StoryboardError
from storyboard.job import FPS, frame_size
from storyboard.edit.timeline import Timeline
from storyboard.model import Board


@dataclass
class FilmReport:
    path: Path
    sha: str
    key: str
    stitched: bool
    duration: float
    stats: Any = None
    subtitles: str | None = None
    """sha256 of the soft subtitles placed beside the film (the lock pins it, so gc keeps it)."""


def film_key(board: Board, timeline: Timeline) -> str:
    """Over the timeline's key fields, the film's format and the stitcher's versions; nothing else."""
    from storyboard.edit.versions import CONFORM_VERSION, TITLES_VERSION

    width, height = frame_size(board.film.resolution, board.film.aspect_ratio)
    return cache_key({
        "node": "film",
        "timeline": timeline.key_fields(),
        "profile": {"width": width, "height": height, "fps": FPS},
        "versions": {"conform": CONFORM_VERSION, "titles": TITLES_VERSION},
    })


def film_timeline(board: Board, cache: Cache, outputs: dict[str, dict[str, Any]]) -> Timeline:
    """The board's edit over its built clips (verified in the cache).

    Raises:
        CacheError: a clip is missing or corrupt in the cache.
    """
    from storyboard.edit.timeline import clip_refs, resolve

    return resolve(board, clip_refs(board, cache, outputs))


def make_film(board: Board, cache: Cache, outputs: dict[str, dict[str, Any]],
              on_step: Any = None, remote: Any = None, previous: str | None = None) -> FilmReport:
    """Stitch (or fetch from the cache) the film and place it at the board's output path, with
    its subtitles beside it (``film.srt``) when they are soft.

    Holds the cache's in-use lock throughout, so gc never removes a folder or an object the
    stitch is writing or reading. `previous` is the film's sha the lock recorded. `on_step`
    hears the stitcher's steps in the user's words (shot ids).

    Raises:
        OutputTakenError: a file storyboard did not write is at the output path.
    """
    with cache.in_use():
        return _make_film(board, cache, outputs, on_step, remote, previous)


def _make_film(board: Board, cache: Cache, outputs: dict[str, dict[str, Any]], on_step: Any, remote: Any,
               previous: str | None) -> FilmReport:
    check_output(board, cache, previous)
    timeline = film_timeline(board, cache, outputs)
    key = film_key(board, timeline)
    entry = cache.get_action(key)
    if entry is None and remote is not None:
        entry = remote.fetch(key, cache)
    stitched = False
    stats = None
    if entry is None:
        from storyboard.edit.stitch import Profile, stitch

        width, height = frame_size(board.film.resolution, board.film.aspect_ratio)
        tmp = cache.tmp_path(".mp4")
        try:
            stats = stitch(timeline, tmp, profile=Profile(width=width, height=height, fps=FPS),
                           memo=cache, on_step=_in_words(on_step, timeline, board))
            from storyboard.media import probe

            info = probe(tmp)
            sha = cache.adopt(tmp)
        finally:
            if tmp.exists():
                tmp.unlink()
        entry = {"key": key, "outputs": {"film": sha}, "meta": {"duration": info.duration}}
        cache.put_action(key, entry)
        stitched = True
        if remote is not None:
            remote.publish(key, entry, cache)
    sha = entry["outputs"]["film"]
    output = check_output(board, cache, previous)  # again: the stitch took a while
    _place(cache, sha, output)
    subtitles = None
    if timeline.subtitles is not None and not timeline.subtitles.burn:
        subtitles = place_sidecar(cache, timeline, output)
    else:
        remove_sidecar(cache, output)
    return FilmReport(output, sha, key, stitched, entry["meta"]["duration"], stats, subtitles)


def _in_words(on_step: Any, timeline: Timeline, board: Board) -> Any:
    """``on_step`` hearing shot ids and the film's name instead of clip numbers and temp files."""
    if on_step is None:
        return None
    from storyboard.edit.timeline import ClipPiece
    from storyboard.progress import name_film_steps

    labels = [p.shot if isinstance(p, ClipPiece) else p.name or "title" for p in timeline.pieces]
    shas = [p.sha if isinstance(p, ClipPiece) else "" for p in timeline.pieces]
    return name_film_steps(on_step, labels, shas, board.output.name)


def sidecar_path(output: Path) -> Path:
    """Where the film's soft subtitles go: beside it, its name with ``.srt``."""
    return output.with_suffix(".srt")


def place_sidecar(cache: Cache, timeline: Timeline, output: Path) -> str:
    """Write the timeline's subtitles as SRT beside the film, through the cache like the film;
    returns the SRT's sha256.

    The SRT becomes a cache object first, so a sidecar storyboard wrote is always one the cache
    knows (``check_sidecar``); it is then copied in place atomically (``_place``).

    Raises:
        OutputTakenError: a file storyboard did not write is where the sidecar goes.
        CacheError: the sidecar cannot be written.
    """
    from storyboard.edit.subtitles import write_srt

    assert timeline.subtitles is not None
    target = sidecar_path(output)
    tmp = cache.tmp_path(".srt")
    try:
        write_srt(timeline.subtitles.cues, tmp)
        sha = cache.adopt(tmp)
    except OSError as exc:
        raise CacheError(f"cannot write the subtitles for {target}: {exc.strerror}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    check_sidecar(cache, output, None)
    _place(cache, sha, target)
    return sha


def remove_sidecar(cache: Cache, output: Path) -> None:
    """Take away the subtitles storyboard placed beside the film once the film has none (or burns
    them): a player would still show the old cues. A file storyboard did not write stays."""
    target = sidecar_path(output)
    try:
        if stat.S_ISREG(os.lstat(target).st_mode) and cache.has_object(cache.digest(target)):
            target.unlink()
    except OSError:
        pass  # gone already, or unreadable: not ours to judge


def check_sidecar(cache: Cache, output: Path, where: str | None) -> None:
    """Refuse to replace a subtitle file beside the film that storyboard did not write.

    "Ours" means its bytes are a cache object (every sidecar is adopted before it is placed).

    Raises:
        OutputTakenError: something else is there.
    """
    target = sidecar_path(output)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    ours = False
    if stat.S_ISREG(info.st_mode):
        try:
            ours = cache.has_object(cache.digest(target))
        except OSError:
            ours = False
    if not ours:
        raise OutputTakenError(f"{where or target}: {target} exists and storyboard did not write it; the "
                               "film's soft subtitles go there: move it away, choose another output or "
                               "set `burn = true`; nothing was run")


class OutputTakenError(StoryboardError):
    """A file storyboard did not write is where the film would go (exit 2): never replaced."""


def check_output(board: Board, cache: Cache, previous: str | None) -> Path:
    """The film's path, if storyboard may write it: absent, or a film it wrote before.

    "Ours" means its bytes are the film the lock recorded (`previous`) or an object of the
    cache (a film stitched for any board). Called before any paid work and again just before
    the film is placed.

    Raises:
        OutsideError: the path leads outside the board's folder.
        OutputTakenError: something else is there.
    """
    output = board.output
    where = f"{board.path}: [film] output '{board.film.output}'"
    subtitles = board.edit.subtitles
    if subtitles is not None and not subtitles.burn:
        check_sidecar(cache, output, f"{board.path}: [edit.subtitles]")
    try:
        info = os.lstat(output)
    except FileNotFoundError:
        return output
    if not stat.S_ISREG(info.st_mode):
        raise OutputTakenError(f"{where}: {output} exists and is not a regular file; storyboard will not "
                               "replace it: move it away or choose another output")
    try:
        sha = cache.digest(output)
    except OSError as exc:
        raise OutputTakenError(f"{where}: {output} exists and cannot be read ({exc.strerror or exc}); "
                               "storyboard will not replace it") from None
    if sha == previous or cache.has_object(sha):
        return output
    raise OutputTakenError(f"{where}: {output} exists and storyboard did not write it (storyboard.lock does "
                           "not record it); move it away or choose another output; nothing was run")


def _place(cache: Cache, sha: str, output: Path) -> None:
    """Copy the film to its output path atomically, unless it is already there.

    The temp file is renamed over the path, so a symlink put there meanwhile is replaced,
    never followed.
    """
    if output.is_file() and not output.is_symlink() and cache.digest(output) == sha:
        return
    import tempfile

    tmp = None
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        shutil.copyfile(cache.object_path(sha), tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except OSError as exc:
        if tmp is not None and tmp.exists():
            tmp.unlink()
        raise CacheError(f"cannot write the film to {output}: {exc.strerror}") from exc
    cache.digest(output)
