"""The cache: an action cache (key -> outputs) over a content-addressed object store.

    .storyboard/
      objects/ab/ab12...   clips, frames, conformed clips, windows; named by their sha256
      actions/<key>.json   what a shot's key produced, and its provenance
      memo/<sha>.json      derived files (conforms, windows, frames at a time) by name
      journal/<key>.json   in-flight provider operations, so a killed build resumes
      locks/<key>.lock     held (flock) while a key renders; says who holds it
      cache.lock           held shared by renders and stitches, exclusively by gc
      tmp/                 partial files; never read as results
      hashes.json          asset digests memoised on (path, size, mtime_ns)

Every write is atomic (temp file in the same folder, fsync, rename). Objects are verified
when they are used: a corrupt object is removed and counts as a miss.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from storyboard.atomic import atomic_write_bytes, atomic_write_json, quiet, read_bytes, retry_vanished_folder
from storyboard.errors import CacheError

CACHE_VERSION = 1
USE_LOCK = "cache.lock"
"""cache.lock: shared by builds writing into the cache, exclusive while gc runs."""
_CHUNK = 1 << 20


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""One encoder for every key: ``json.dumps`` would build one per call (a plan makes thousands)."""


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces: the same data always gives the same bytes."""
    return _CANONICAL.encode(data)


def cache_key(components: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that shapes an output, plus the cache version.

    `components` is a RenderJob dump (provider, model, parameters, take and the sha256 of
    every input). Paths, titles and credentials are never part of it.
    """
    return hashlib.sha256(canonical_json({"v": CACHE_VERSION, **components}).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _disk_error(exc: OSError, where: Path) -> CacheError:
    reason = {28: "the disk is full", 30: "the folder is read-only", 13: "permission denied"}.get(
        exc.errno or 0, exc.strerror or str(exc))
    return CacheError(f"cannot write to the cache at {where}: {reason}; free space or point "
                      "--cache-dir / STORYBOARD_CACHE at a writable folder")


class Cache:
    """A local cache folder. Safe to share between boards and between concurrent builds."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = str(self.root / "objects")  # str(object_path(sha)) == f"{_objects}/{sha[:2]}/{sha}"
        self._actions = str(self.root / "actions")
        self._hashes: dict[str, list[Any]] | None = None
        self._hashes_dirty = False
        self._mutex = threading.Lock()

    # ---- objects --------------------------------------------------------------------------

    def object_path(self, sha: str) -> Path:
        return Path(self.object_file(sha))  # one parse, not three joins

    def object_file(self, sha: str) -> str:
        """``str(object_path(sha))`` without making a Path: a plan names an object a shot."""
        return f"{self._objects}{os.sep}{sha[:2]}{os.sep}{sha}"

    def has_object(self, sha: str) -> bool:
        return self.object_path(sha).is_file()

    def intact(self, sha: str) -> bool:
        """Present and hashing to its name; the hash is memoised on (size, mtime_ns) like assets'.

        A corrupt object is removed, so it counts as a miss and is generated again. The path is
        a string (``str(object_path(sha))``): a no-op build checks thousands, and pathlib's joins
        were most of the time.
        """
        path = self.object_file(sha)
        try:
            ok = self._digest_of(path) == sha
        except OSError:
            return False
        if not ok:
            with quiet():
                os.unlink(path)
        return ok

    def verified(self, sha: str) -> Path | None:
        """The object's path if its bytes still hash to its name (``intact``: hashed again only when
        its size or mtime changed, so a re-stitch does not read every clip and segment through);
        a corrupt one is removed."""
        return self.object_path(sha) if self.intact(sha) else None

    def adopt(self, produced: Path) -> str:
        """Move a finished file into the store under its own hash; returns the hash."""
        sha = file_sha256(produced)
        dest = self.object_path(sha)
        try:
            if dest.is_file() and dest.stat().st_size == produced.stat().st_size:
                produced.unlink()
                return sha
            with open(produced, "rb") as fh:
                os.fsync(fh.fileno())
            retry_vanished_folder(dest.parent, lambda: os.replace(produced, dest))
            self._remember(dest, sha)
        except OSError as exc:
            raise _disk_error(exc, self.root) from exc
        return sha

    def adopt_copy(self, source: Path) -> str:
        """Copy a file the cache does not own (an asset) into the store."""
        import shutil  # with tempfile, ≈ 5 ms of a plan's start, which writes nothing

        tmp = self.tmp_path(source.suffix)
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            with quiet():
                tmp.unlink()
            raise _disk_error(exc, self.root) from exc
        return self.adopt(tmp)

    def write_error(self, exc: OSError) -> CacheError | None:
        """The CacheError for a write that failed because the cache's disk is full or read-only, else None."""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            return _disk_error(exc, self.root)
        return None

    def tmp_path(self, suffix: str = "") -> Path:
        """A fresh path under tmp/ on the cache's filesystem, so adopt() is a rename."""
        import tempfile

        folder = self.root / "tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=folder, suffix=suffix)
            os.close(fd)
        except OSError as exc:
            raise _disk_error(exc, self.root) from exc
        return Path(name)

    # ---- actions --------------------------------------------------------------------------

    def get_action(self, key: str) -> dict[str, Any] | None:
        """The action entry for `key` if every object it names is present."""
        entry = self.read_action(key)
        if entry is None:
            return None
        for sha in entry.get("outputs", {}).values():
            if not self.intact(sha):
                return None
        return entry

    def read_action(self, key: str) -> dict[str, Any] | None:
        """The action entry stored for `key`, its objects not checked (None when there is none)."""
        try:
            entry = json.loads(read_bytes(f"{self._actions}{os.sep}{key}.json").decode("utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) else None

    def put_action(self, key: str, entry: dict[str, Any]) -> None:
        try:
            atomic_write_json(self.root / "actions" / f"{key}.json", entry)
        except OSError as exc:
            raise _disk_error(exc, self.root) from exc

    def forget_action(self, key: str) -> None:
        with quiet():
            (self.root / "actions" / f"{key}.json").unlink()

    # ---- memo (the stitcher's derived files) ---------------------------------------------

    def _memo_file(self, name: str) -> Path:
        return self.root / "memo" / f"{hashlib.sha256(name.encode()).hexdigest()}.json"

    def memo_get(self, name: str) -> Path | None:
        """The verified object stored under `name`, or None."""
        try:
            sha = json.loads(self._memo_file(name).read_text())["object"]
        except (OSError, ValueError, KeyError):
            return None
        return self.verified(sha)

    def memo_put(self, name: str, produced: Path) -> Path:
        """Adopt `produced` (moved) as the object for `name`; returns its cached path."""
        sha = self.adopt(produced)
        try:
            atomic_write_json(self._memo_file(name), {"name": name, "object": sha})
        except OSError as exc:
            raise _disk_error(exc, self.root) from exc
        return self.object_path(sha)

    def memo_sha(self, name: str) -> str | None:
        """The object hash stored under `name`, without verifying it."""
        try:
            sha = json.loads(self._memo_file(name).read_text())["object"]
        except (OSError, ValueError, KeyError):
            return None
        return sha if self.has_object(sha) else None

    # ---- asset digests ---------------------------------------------------------------------

    def digest(self, path: Path) -> str:
        """sha256 of a file, memoised on (path, size, mtime_ns) so no-op builds read nothing."""
        return self._digest_of(str(path))

    def _digest_of(self, key: str) -> str:
        """``digest`` of the file named ``key`` (``str`` of its path, the memo's key)."""
        self._load_digests()
        assert self._hashes is not None
        st = os.stat(key)
        memo = self._hashes.get(key)
        if memo and memo[0] == st.st_size and memo[1] == st.st_mtime_ns:
            return memo[2]
        sha = file_sha256(Path(key))
        with self._mutex:
            self._hashes[key] = [st.st_size, st.st_mtime_ns, sha]
            self._hashes_dirty = True
        return sha

    def _remember(self, path: Path, sha: str) -> None:
        self._load_digests()
        st = path.stat()
        assert self._hashes is not None
        with self._mutex:
            self._hashes[str(path)] = [st.st_size, st.st_mtime_ns, sha]
            self._hashes_dirty = True

    def _load_digests(self) -> None:
        if self._hashes is None:
            try:
                self._hashes = json.loads((self.root / "hashes.json").read_text())
            except (OSError, ValueError):
                self._hashes = {}

    def save_digests(self) -> None:
        """Persist the digest memo (merged with what other builds wrote meanwhile)."""
        if not self._hashes_dirty or self._hashes is None:
            return
        try:
            on_disk = json.loads((self.root / "hashes.json").read_text())
        except (OSError, ValueError):
            on_disk = {}
        with self._mutex:
            on_disk.update(self._hashes)
        with quiet():
            atomic_write_json(self.root / "hashes.json", on_disk)
        self._hashes_dirty = False

    # ---- journal and locks -----------------------------------------------------------------

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Held (shared) while a build writes into the cache: a render, a stitch. Builds share
        it; gc takes it exclusively (`collecting`), so it never removes a folder a build is
        writing into, nor an object a stitch is about to read."""
        import fcntl

        fh = self._open_lock(self.root / USE_LOCK)
        try:
            fcntl.flock(fh, fcntl.LOCK_SH)  # waits only while a gc runs: seconds
            yield
        finally:
            fh.close()

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Held (exclusive) by gc; raises LockHeldError at once while a build holds `in_use`."""
        import fcntl

        from storyboard.errors import LockHeldError

        fh = self._open_lock(self.root / USE_LOCK)
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeldError(f"a build is rendering or stitching into {self.root}; run gc when it "
                                    "finishes") from None
            yield
        finally:
            fh.close()

    def _open_lock(self, path: Path) -> Any:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return open(path, "a+")
        except OSError as exc:
            raise _disk_error(exc, self.root) from exc

    def journal(self, key: str) -> FileJournal:
        return FileJournal(self.root / "journal" / f"{key}.json")

    @contextmanager
    def key_lock(self, key: str, on_wait: Any = None) -> Iterator[None]:
        """Hold an exclusive lock on `key` while it renders; waits for another build's hold.

        The kernel drops a flock when its process dies, so a killed build leaves no stale lock.
        """
        import fcntl
        import socket  # here: only a render names its host (≈ 5 ms to import)

        path = self.root / "locks" / f"{key}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "a+")
        except OSError as exc:
            raise _disk_error(exc, self.root) from exc
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another build"
                if on_wait:
                    on_wait(holder)
                fcntl.flock(fh, fcntl.LOCK_EX)
            with quiet():  # who holds it is for messages only: a full disk must not stop the build here
                fh.seek(0)
                fh.truncate()
                fh.write(f"pid {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv[:3])}) since "
                         f"{time.strftime('%H:%M:%S')}")
                fh.flush()
            yield
        finally:
            with quiet():
                fh.truncate(0)
            fh.close()


class FileJournal:
    """A journal entry on disk for one key: the provider's operation id and when it was sent."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def write(self, entry: dict[str, Any]) -> None:
        atomic_write_json(self.path, entry)

    def clear(self) -> None:
        with quiet():
            self.path.unlink()


def default_cache_dir(board_path: Path) -> Path:
    """STORYBOARD_CACHE, else `.storyboard/` beside the storyboard."""
    env = os.environ.get("STORYBOARD_CACHE")
    return Path(env) if env else board_path.parent / ".storyboard"
