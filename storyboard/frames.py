"""FrameDigests: which pixel digest each cached frame PNG holds, remembered in the cache.

A frame handed from one shot to another is keyed by its decoded pixels (media.pixel_digest),
while the cache stores and names the PNG by its bytes. This memo maps one to the other, so a
frame's pixels are hashed once (when extracted, or once for a frame cached before pixel keys)
and a no-op plan reads no picture. It also remembers each PNG's bytes digest for a pixel digest,
which finds the actions cached under the former PNG-keyed requests (see Resolver.action).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from storyboard.cache import Cache, atomic_write_json

MEMO_FILE = "pixels.json"
_open: dict[Path, FrameDigests] = {}
_registry = threading.Lock()


class FrameDigests:
    """PNG object sha -> pixel digest, persisted as `pixels.json` in the cache root."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._path = cache.root / MEMO_FILE
        self._mutex = threading.Lock()
        self._dirty = False
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError):
            data = {}
        self._pixels: dict[str, str] = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} \
            if isinstance(data, dict) else {}

    def remember(self, png: str, pixels: str) -> None:
        with self._mutex:
            if self._pixels.get(png) != pixels:
                self._pixels[png] = pixels
                self._dirty = True

    def of(self, png: str) -> str:
        """The pixel digest of the cached PNG `png`, decoding it only the first time."""
        found = self._pixels.get(png)
        if found is None:
            from storyboard.media import png_pixel_digest

            found = png_pixel_digest(self._cache.object_path(png))
            self.remember(png, found)
        return found

    def save(self) -> None:
        """Persist new entries, merged with what other builds wrote meanwhile."""
        with self._mutex:
            if not self._dirty:
                return
            try:
                on_disk = json.loads(self._path.read_text())
            except (OSError, ValueError):
                on_disk = {}
            merged = {**(on_disk if isinstance(on_disk, dict) else {}), **self._pixels}
            try:
                atomic_write_json(self._path, merged)
            except OSError:
                return  # a memo: the next run hashes those frames again
            self._dirty = False


def frame_digests(cache: Cache) -> FrameDigests:
    """The one FrameDigests of this cache in this process."""
    with _registry:
        memo = _open.get(cache.root)
        if memo is None:
            memo = _open[cache.root] = FrameDigests(cache)
        return memo
