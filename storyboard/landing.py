"""commit_clip(): a clip a provider returned, landed in the cache as an action entry.

A provider writes into the cache's tmp/; nothing enters the cache until the clip decodes, its
first and last frames are extracted (with their pixel digests, which key the shots downstream)
and all three are adopted, and only then is the action entry written that names them. One clip of
a batch (a shot's takes, storyboard.takes) lands at a time, so each paid video is kept on its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from storyboard.cache import Cache
from storyboard.errors import MediaError, ProviderError
from storyboard.frames import frame_digests
from storyboard.job import FPS, RenderJob, RenderResult


def commit_clip(cache: Cache, shot_id: str, job: RenderJob, key: str, clip_tmp: Path, result: RenderResult,
                started: float, want: float) -> dict[str, Any]:
    """Probe one returned clip (`want` seconds long), extract its first and last frames, adopt all
    three into the cache and put the action that names them. Returns the action entry."""
    from storyboard.media import probe

    mismatch = None
    try:
        info = probe(clip_tmp)
    except MediaError as exc:
        raise ProviderError(f"shot '{shot_id}': {job.provider} returned a file that does not decode: "
                            f"{exc.message}", provider=job.provider) from exc
    if abs(info.duration - want) > 1.5 / FPS + 0.05:  # paid for and decodable: keep it, say so
        mismatch = (f"{job.provider} returned {info.duration:.2f} s for a {want:.2f} s request; kept "
                    "(it was paid for) and used as it is")
    frames, pixels = _land_frames(cache, clip_tmp)
    outputs = {"clip": cache.adopt(clip_tmp), **frames}
    entry = {
        "key": key,
        "outputs": outputs,
        "pixels": pixels,
        "meta": {"width": info.width, "height": info.height, "fps": info.fps, "frames": info.frames,
                 "duration": info.duration, "has_audio": info.has_audio},
        "provider": job.provider,
        "model": job.model,
        "cost": result.cost.amount if result.cost else None,
        "unit": result.cost.unit if result.cost else None,
        "operation": result.operation,
        "handle": result.handle,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        **({"mismatch": mismatch} if mismatch else {}),
    }
    cache.put_action(key, entry)
    return entry


def restore_frames(cache: Cache, key: str, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The action `entry` (its clip intact) with its first and last frames extracted from the clip
    again and put back in the cache; None when the clip does not give them (then it is a miss)."""
    from storyboard.errors import CacheError

    try:
        frames, pixels = _land_frames(cache, cache.object_path(entry["outputs"]["clip"]))
    except (MediaError, CacheError, OSError):
        return None
    restored = {**entry, "outputs": {**entry["outputs"], **frames}, "pixels": pixels}
    try:
        cache.put_action(key, restored)
    except CacheError:
        pass  # a read-only cache: restored again next time, never paid for again
    return restored


def _land_frames(cache: Cache, clip: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The clip's first and last frames extracted and adopted into the cache: their PNGs' hashes
    and their pixel digests (remembered, so no later run decodes them), by "first" and "last"."""
    from storyboard.media import extract_first_last

    first_tmp = cache.tmp_path(".png")
    last_tmp = cache.tmp_path(".png")
    try:
        pixels = dict(zip(("first", "last"), extract_first_last(clip, first_tmp, last_tmp), strict=True))
        frames = {"first": cache.adopt(first_tmp), "last": cache.adopt(last_tmp)}
    finally:
        for tmp in (first_tmp, last_tmp):
            if tmp.exists():
                tmp.unlink()
    for frame, digest in pixels.items():
        frame_digests(cache).remember(frames[frame], digest)
    return frames, pixels
