"""The film node: its key over the clips and the edit, the stitch, and the output file."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.cache import Cache, cache_key
from storyboard.errors import CacheError
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
              on_step: Any = None, remote: Any = None) -> FilmReport:
    """Stitch (or fetch from the cache) the film and place it at the board's output path."""
    clips = [outputs[s]["outputs"]["clip"] for s in board.sequence]
    key = film_key(board, clips)
    entry = cache.get_action(key)
    if entry is None and remote is not None:
        entry = remote.fetch(key, cache)
    stitched = False
    stats = None
    if entry is None:
        from storyboard.stitch import Profile, Transition, stitch

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
    _place(cache, sha, board.output)
    return FilmReport(board.output, sha, key, stitched, entry["meta"]["duration"], stats)


def _verified(cache: Cache, sha: str) -> Path:
    path = cache.verified(sha)
    if path is None:
        raise CacheError(f"clip {sha[:12]} is missing or corrupt in the cache; run the build again to "
                         "regenerate it")
    return path


def _place(cache: Cache, sha: str, output: Path) -> None:
    """Copy the film to its output path atomically, unless it is already there."""
    if output.is_file() and cache.digest(output) == sha:
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
