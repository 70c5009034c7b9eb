"""The film node: its key over the clips and the edit, the stitch, and the output file."""

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
from storyboard.model import Board


@dataclass
class FilmReport:
    path: Path
    sha: str
    key: str
    stitched: bool
    duration: float
    stats: Any = None


def film_key(board: Board, clips: list[str]) -> str:
    """Over the clip hashes in order, the edit settings and the film's format; nothing else."""
    width, height = frame_size(board.film.resolution, board.film.aspect_ratio)
    return cache_key({
        "node": "film",
        "clips": clips,
        "edit": board.edit.model_dump(mode="json", exclude={"sequence"}),
        "profile": {"width": width, "height": height, "fps": FPS},
    })


def make_film(board: Board, cache: Cache, outputs: dict[str, dict[str, Any]],
              on_step: Any = None, remote: Any = None, previous: str | None = None) -> FilmReport:
    """Stitch (or fetch from the cache) the film and place it at the board's output path.

    Holds the cache's in-use lock throughout, so gc never removes a folder or an object the
    stitch is writing or reading. `previous` is the film's sha the lock recorded.

    Raises:
        OutputTakenError: a file storyboard did not write is at the output path.
    """
    with cache.in_use():
        return _make_film(board, cache, outputs, on_step, remote, previous)


def _make_film(board: Board, cache: Cache, outputs: dict[str, dict[str, Any]], on_step: Any, remote: Any,
               previous: str | None) -> FilmReport:
    check_output(board, cache, previous)
    clips = [outputs[s]["outputs"]["clip"] for s in board.sequence]
    key = film_key(board, clips)
    entry = cache.get_action(key)
    if entry is None and remote is not None:
        entry = remote.fetch(key, cache)
    stitched = False
    stats = None
    if entry is None:
        from storyboard.edit.stitch import Profile, Transition, stitch

        width, height = frame_size(board.film.resolution, board.film.aspect_ratio)
        t = board.edit.transition
        tmp = cache.tmp_path(".mp4")
        try:
            stats = stitch(
                [(sha, _verified(cache, sha)) for sha in clips],
                tmp,
                profile=Profile(width=width, height=height, fps=FPS),
                transition=Transition(kind=t.kind, duration=0.0 if t.kind == "cut" else t.duration),
                memo=cache,
                normalize_audio=board.edit.audio.normalize,
                on_step=on_step,
            )
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
    return FilmReport(output, sha, key, stitched, entry["meta"]["duration"], stats)


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


def _verified(cache: Cache, sha: str) -> Path:
    path = cache.verified(sha)
    if path is None:
        raise CacheError(f"clip {sha[:12]} is missing or corrupt in the cache; run the build again to "
                         "regenerate it")
    return path


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
