"""collect(): remove what no given lock needs from a cache, and say how much it freed.

What a lock pins is kept: every shot's clip, first and last frame, every candidate of it
(storyboard.takes: each was paid for), the input digests its key was made of, the film and its subtitles. What is removed, in this order, so no entry ever names a missing
object:

    memo/      derived files (conformed clips, transition windows, frames at a time). Kept
               when the name mentions a pinned object (frames of a kept clip); the stitcher's
               pieces are named by keys, not clips, so they go: they cost no money, and the
               next stitch of a changed film encodes them again, once.
    actions/   entries whose outputs are no longer all present.
    objects/   everything else.
    tmp/       partial files older than an hour.

Never touched: journal/ (in-flight provider jobs, resumed without paying twice), locks/, and
stamps/. Anything written after the newest given lock is kept, because a build may still be
committing it; and gc refuses to run while a build holds a shot's lock (renders in flight) or
the cache's `cache.lock` (a render or a stitch writing into the cache), which gc itself holds
for its whole run so no build starts writing meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.cache import Cache, atomic_write_json, default_cache_dir
from storyboard.errors import LockHeldError, StoryboardError, StoryboardFileError
from storyboard.lockfile import lock_path, log_path, read_lock
from storyboard.takes import pinned as candidate_pins

TMP_MAX_AGE = 3600.0
"""Seconds after which a file in tmp/ is abandoned (a killed build's partial download)."""

_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass
class GcReport:
    """What collect() removed (or, with dry_run, would remove) and what it kept."""

    objects_removed: int = 0
    bytes_freed: int = 0
    actions_removed: int = 0
    memos_removed: int = 0
    tmp_removed: int = 0
    objects_kept: int = 0
    bytes_kept: int = 0
    kept_recent: int = 0
    """Unpinned objects kept because they are newer than the newest lock."""
    dry_run: bool = False
    cache: Path | None = None
    locks: list[Path] = field(default_factory=list)
    listing: list[str] = field(default_factory=list)
    """With dry_run, one line per thing that would go: what, its name or key, its size."""

    def summary(self) -> str:
        """One line for the command line; with dry_run, preceded by the listing."""
        verb = "would remove" if self.dry_run else "removed"
        line = (f"{self.cache}: {verb} {self.objects_removed} objects ({_size(self.bytes_freed)}), "
                f"{self.actions_removed} actions, {self.memos_removed} memo entries, {self.tmp_removed} "
                f"temp files; kept {self.objects_kept} objects ({_size(self.bytes_kept)})")
        if self.kept_recent:
            line += f", {self.kept_recent} of them newer than the locks"
        return "\n".join([*self.listing, line]) if self.dry_run else line


def locate(files: list[Path], cache_dir: Path | None = None) -> dict[Path, list[Path]]:
    """Each cache the storyboards use -> the locks of the boards that use it.

    A `.lock` file may be given in place of its storyboard.

    Raises:
        StoryboardFileError: a storyboard does not exist.
        StoryboardError: a storyboard has no lock: gc would keep none of its clips.
    """
    caches: dict[Path, list[Path]] = {}
    for file in map(Path, files):
        lock = file if file.suffix == ".lock" else lock_path(file)
        if not file.is_file():
            raise StoryboardFileError(f"{file}: no such file")
        if not (os.path.lexists(lock) or log_path(lock).is_file()):
            raise StoryboardError(f"{file}: no {lock.name} beside it, so gc would keep none of its clips; "
                                  "build it first, or leave it out")
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir(file)
        caches.setdefault(root.resolve(), []).append(lock)
    return caches


def pins(lock: Path) -> set[str]:
    """The object hashes a lock needs: clips, frames, input digests and the film.

    Raises:
        StoryboardError: the lock cannot be read; gc stops rather than guess.
    """
    data = read_lock(lock, strict=True)  # merged with its log: a running or killed build's shots count
    shots, film = data.shots, data.film
    found: set[str] = set()
    for entry in shots.values():
        found |= {entry.get(k) for k in ("clip", "first", "last")}
        components = entry.get("components", {})
        found |= {components.get(k) for k in ("first_frame", "last_frame", "extends")}
        found |= set(components.get("references") or ())
        found |= candidate_pins(entry)  # every paid take of a live shot (storyboard.takes)
    found.add(film.get("sha"))
    found.add(film.get("subtitles"))  # the soft subtitles beside the film
    return {sha for sha in found if isinstance(sha, str) and _SHA.fullmatch(sha)}


def collect(cache: Cache, keep_locks: list[Path], dry_run: bool = False, *, now: float | None = None) -> GcReport:
    """Remove from `cache` every object the given locks do not pin; see the module docstring.

    Args:
        cache: the cache to clean.
        keep_locks: the locks of every board that uses this cache (a board left out loses
            its clips, unless they are newer than the newest lock given).
        dry_run: count, remove nothing.
        now: the clock, for the age of tmp/ files.

    Raises:
        LockHeldError: a build is rendering into this cache right now.
        StoryboardError: a lock cannot be read.
    """
    if dry_run or not cache.root.is_dir():
        return _collect(cache, keep_locks, dry_run, now)
    with cache.collecting():  # no render or stitch writes into the cache meanwhile
        return _collect(cache, keep_locks, dry_run, now)


def _collect(cache: Cache, keep_locks: list[Path], dry_run: bool, now: float | None) -> GcReport:
    now = time.time() if now is None else now
    root = cache.root
    report = GcReport(dry_run=dry_run, cache=root, locks=list(keep_locks))
    pinned: set[str] = set()
    for lock in keep_locks:
        pinned |= pins(lock)
    if not root.is_dir():
        return report
    if not dry_run:
        _refuse_if_building(root)
    newest = max((_mtime(path) for lock in keep_locks for path in (lock, log_path(lock))), default=now)

    keep = set(pinned)
    memo_gone: list[Path] = []
    for path, entry in _json_files(root / "memo"):
        sha = entry.get("object") if entry else None
        name = str(entry.get("name", "")) if entry else ""
        if sha and (any(p in name for p in pinned) or _mtime(path) > newest):
            keep.add(sha)
        else:
            memo_gone.append(path)

    gone: list[tuple[Path, int]] = []
    for path in _objects(root):
        st = _stat(path)
        if st is None:
            continue
        if path.name in keep:
            report.objects_kept += 1
            report.bytes_kept += st.st_size
        elif st.st_mtime > newest:
            report.objects_kept += 1
            report.bytes_kept += st.st_size
            report.kept_recent += 1
        else:
            gone.append((path, st.st_size))
    removed = {path.name for path, _ in gone}

    actions_gone = [path for path, entry in _json_files(root / "actions")
                    if entry is None or any(sha in removed or not cache.has_object(sha)
                                            for sha in entry.get("outputs", {}).values())]
    tmp_gone = [p for p in (root / "tmp").glob("*") if p.is_file() and now - _mtime(p) > TMP_MAX_AGE]

    report.memos_removed = len(memo_gone)
    report.actions_removed = len(actions_gone)
    report.objects_removed = len(gone)
    report.bytes_freed = sum(size for _, size in gone)
    report.tmp_removed = len(tmp_gone)
    if dry_run:
        report.listing = [
            *(f"  object {path.name} ({_size(size)})" for path, size in gone),
            *(f"  action {path.stem}" for path in actions_gone),
            *(f"  memo {_memo_name(path)}" for path in memo_gone),
            *(f"  temp file {path.name} ({_size(_stat(path).st_size if _stat(path) else 0)})" for path in tmp_gone),
        ]
        return report
    for path in [*actions_gone, *memo_gone, *(p for p, _ in gone), *tmp_gone]:
        _unlink(path)
    for shard in (root / "objects").glob("*"):
        _rmdir(shard)
    _forget_digests(root, removed)
    return report


def _refuse_if_building(root: Path) -> None:
    """Raise if any shot's lock is held: a build is rendering and has not committed yet."""
    import fcntl

    for path in (root / "locks").glob("*.lock"):
        try:
            fh = open(path, "a+")
        except OSError:
            continue
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another build"
                raise LockHeldError(f"a build is rendering into {root} ({holder}); run gc when it "
                                    "finishes") from None
            fcntl.flock(fh, fcntl.LOCK_UN)


def _memo_name(path: Path) -> str:
    try:
        return str(json.loads(path.read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return path.stem


def _json_files(folder: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            entry = None
        found.append((path, entry if isinstance(entry, dict) else None))
    return found


def _objects(root: Path) -> list[Path]:
    return sorted(p for p in (root / "objects").glob("*/*") if _SHA.fullmatch(p.name))


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _mtime(path: Path) -> float:
    st = _stat(path)
    return st.st_mtime if st is not None else 0.0


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StoryboardError(f"cannot remove {path}: {exc.strerror or exc}") from exc


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty, or already gone


def _forget_digests(root: Path, removed: set[str]) -> None:
    """Drop the digest memo's entries for removed objects (by name: a build may have used a
    relative path to the same cache)."""
    memo = root / "hashes.json"
    try:
        digests = json.loads(memo.read_text())
    except (OSError, ValueError):
        return
    kept = {k: v for k, v in digests.items()
            if not (Path(k).name in removed and Path(k).parent.parent.name == "objects")}
    if len(kept) != len(digests):
        try:
            atomic_write_json(memo, kept)
        except OSError:
            pass  # a stale memo entry is harmless: it is checked against size and mtime


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            break
    return f"{n:.1f} {unit}"
