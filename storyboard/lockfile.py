"""storyboard.lock: per shot, the key, its components, the clip it produced and what it cost.

Commit it beside the storyboard: with the same cache (or a remote one), a teammate rebuilds
the identical film without paying, and `plan` explains every rerun against it.

Like ninja's `.ninja_log`, a build never rewrites the lock per shot: each finished shot is
appended as one JSON line to `storyboard.lock.log` (O_APPEND; fdatasync for a paid render),
and the log is compacted into the lock at the end of a build, or at the start of the next one
after a crash.
Two builds at once therefore keep each other's shots, and a 10,000-shot build writes the lock
once instead of 10,000 times. Readers see the lock merged with its log.

    storyboard.lock       {"version": 1, "shots": {id: entry}, "film": {...}}   (committed)
    storyboard.lock.log   {"shot": id, "entry": {...}} | {"film": {...}}, one per line; removed
                          once compacted

Locking (flock on the log): appenders and readers hold it shared, the compactor exclusive
around read-merge-write-truncate. The board's folder is untrusted, so neither file is
followed through a symlink, opened if it is a FIFO or device, or read past MAX_BYTES.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.cache import atomic_write_bytes
from storyboard.errors import CacheError, StoryboardError

LOCK_VERSION = 1
MAX_BYTES = 64 << 20
"""A lock or log larger than this is not ours (64 MiB holds ~40,000 shots); it is ignored."""
COMPACT_AT = 8 << 20
"""A build folds its log into the lock when the log passes this, so the log never nears MAX_BYTES."""

_OPEN_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def lock_path(board_path: Path) -> Path:
    return board_path.with_name("storyboard.lock") if board_path.name == "storyboard.toml" \
        else board_path.with_suffix(".lock")


def log_path(lock: Path) -> Path:
    """The append-only log beside a lock: `storyboard.lock.log`."""
    return lock.with_name(lock.name + ".log")


class LockUnreadable(StoryboardError):
    """A lock exists but is not a readable regular file (gc stops rather than guess)."""


@dataclass
class LockData:
    """A lock's contents: shots by id, and the film."""

    shots: dict[str, dict[str, Any]] = field(default_factory=dict)
    film: dict[str, Any] = field(default_factory=dict)


def _print_warning(message: str) -> None:
    print(f"storyboard: warning: {message}", file=sys.stderr)


def read_lock(lock: Path, *, warn: Callable[[str], None] = _print_warning, strict: bool = False) -> LockData:
    """The lock merged with its log (what finished builds and running ones recorded).

    A lock or log that is not a regular file, too large, or not JSON is ignored with one
    warning; with `strict` (gc), a bad lock raises LockUnreadable instead.
    """
    data = LockData()
    with _log_shared(log_path(lock), warn) as log_fd:
        raw = _read_regular(lock, warn, strict)
        if raw is not None:
            _merge_lock(data, raw, lock, warn, strict)
        if log_fd is not None:
            _merge_log(data, _read_fd(log_fd), log_path(lock), warn)
    return data


class LockFile:
    """The lock as one build sees it: read once, appended to per shot, compacted at the end."""

    def __init__(self, path: Path, warn: Callable[[str], None] = _print_warning) -> None:
        self.path = path
        self.log = log_path(path)
        self._mutex = threading.RLock()
        warned: set[str] = set()

        def warn_once(message: str) -> None:
            if message not in warned:
                warned.add(message)
                warn(message)

        self._warn = warn_once
        data = read_lock(path, warn=self._warn)
        self.shots: dict[str, dict[str, Any]] = data.shots
        self.film: dict[str, Any] = data.film

    def record_shot(self, shot_id: str, entry: dict[str, Any], *, durable: bool = True) -> None:
        """Append one finished shot to the log, without rewriting the lock.

        `durable` syncs it to disk (a paid render). A cache hit need not be: were the line lost
        to a power cut, the next build would find the shot cached and record it again, free.
        """
        with self._mutex:
            self.shots[shot_id] = entry
            self._append({"shot": shot_id, "entry": entry}, durable)

    def record_film(self, entry: dict[str, Any]) -> None:
        self.compact(film=entry)

    def prune(self, keep: set[str]) -> None:
        """Drop shots no longer in the storyboard (and fold the log into the lock)."""
        self.compact(keep=keep)

    def compact(self, keep: set[str] | None = None, film: dict[str, Any] | None = None) -> None:
        """Merge the log into the lock under the exclusive lock, then remove the log.

        `keep` drops the other shots; `film` replaces the film's entry. The lock is written
        (atomically) before the log goes, so a crash in between only replays entries.
        """
        with self._mutex, self._log_exclusive() as fd:
            data = LockData()
            raw = _read_regular(self.path, self._warn, strict=False)
            if raw is not None:
                _merge_lock(data, raw, self.path, self._warn, strict=False)
            _merge_log(data, _read_fd(fd), self.log, self._warn)
            if keep is not None:
                data.shots = {k: v for k, v in data.shots.items() if k in keep}
            if film is not None:
                data.film = film
            text = json.dumps({"version": LOCK_VERSION, "shots": dict(sorted(data.shots.items())),
                               "film": data.film}, indent=2, sort_keys=True) + "\n"
            if raw is None or raw != text.encode():
                try:
                    atomic_write_bytes(self.path, text.encode())
                except OSError as exc:
                    raise CacheError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
            _unlink_quietly(self.log)
            self.shots, self.film = data.shots, data.film

    # ---- the log ----------------------------------------------------------------------------

    def _append(self, record: dict[str, Any], durable: bool) -> None:
        line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
        try:
            with self._log_open(fcntl.LOCK_SH) as fd:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a build killed mid-line: start ours on a fresh one
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                if durable:
                    os.fdatasync(fd)
                size += len(line)
        except OSError as exc:
            raise CacheError(f"cannot record the shot in {self.log}: {exc.strerror or exc}; it is cached, "
                             "so the next build records it without paying") from exc
        if size > COMPACT_AT:
            self.compact()

    @contextmanager
    def _log_exclusive(self) -> Iterator[int]:
        try:
            with self._log_open(fcntl.LOCK_EX) as fd:
                yield fd
        except OSError as exc:
            raise CacheError(f"cannot lock {self.log}: {exc.strerror or exc}") from exc

    @contextmanager
    def _log_open(self, mode: int) -> Iterator[int]:
        """The log, created if missing, flocked in `mode`; the very file at the path (a compactor
        may remove it while we wait), never a symlink, FIFO or device (those are replaced)."""
        for _ in range(100):
            fd = self._open_log_for_writing()
            try:
                fcntl.flock(fd, mode)
                try:
                    same = os.stat(self.log, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield fd
                    return
            finally:
                os.close(fd)
        raise OSError(errno.EAGAIN, "the log kept being replaced")

    def _open_log_for_writing(self) -> int:
        for _ in range(3):
            try:
                mode = os.lstat(self.log).st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None and stat.S_ISDIR(mode):
                raise OSError(errno.EISDIR, "it is a folder; remove it")
            if mode is not None and not stat.S_ISREG(mode):
                self._warn(f"{self.log.name} is not a regular file; replacing it")
                _unlink_quietly(self.log)
            try:  # O_NOFOLLOW and O_NONBLOCK: a symlink or FIFO put there since the lstat cannot trap us
                fd = os.open(self.log, os.O_RDWR | os.O_APPEND | os.O_CREAT | _OPEN_SAFE, 0o666)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                continue
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
        raise OSError(errno.EEXIST, "it is not a regular file and cannot be replaced")


# ---- reading untrusted files ------------------------------------------------------------------


@contextmanager
def _log_shared(log: Path, warn: Callable[[str], None]) -> Iterator[int | None]:
    """The log opened read-only and flocked shared, or None when it is absent or not a regular file."""
    try:
        regular = stat.S_ISREG(os.lstat(log).st_mode)
        fd = os.open(log, os.O_RDONLY | _OPEN_SAFE) if regular else -1
    except FileNotFoundError:
        yield None
        return
    except OSError:
        regular = False
    if not regular:
        warn(f"{log.name} is not a regular file; ignoring it")
        yield None
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            warn(f"{log.name} is not a regular file; ignoring it")
            yield None
            return
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)


def _read_regular(path: Path, warn: Callable[[str], None], strict: bool) -> bytes | None:
    """The bytes of `path` if it is a regular file under MAX_BYTES; else None, warned (or raised)."""
    def refuse(why: str) -> None:
        if strict:
            raise LockUnreadable(f"{path}: {why}; gc keeps everything until it is fixed or rebuilt")
        warn(f"{path.name} {why}; ignoring it")

    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        refuse(f"cannot be read ({exc.strerror or exc})")
        return None
    if not stat.S_ISREG(info.st_mode):
        refuse("is not a regular file")
        return None
    if info.st_size > MAX_BYTES:
        refuse(f"is larger than {MAX_BYTES >> 20} MiB")
        return None
    try:
        fd = os.open(path, os.O_RDONLY | _OPEN_SAFE)
    except OSError as exc:
        refuse(f"cannot be read ({exc.strerror or exc})")
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            refuse("is not a regular file")
            return None
        data = _read_fd(fd)
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        refuse(f"is larger than {MAX_BYTES >> 20} MiB")
        return None
    return data


def _read_fd(fd: int) -> bytes:
    """Up to MAX_BYTES + 1 bytes from the start of a regular file."""
    chunks, offset = [], 0
    while offset <= MAX_BYTES:
        chunk = os.pread(fd, min(1 << 20, MAX_BYTES + 1 - offset), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _merge_lock(data: LockData, raw: bytes, path: Path, warn: Callable[[str], None], strict: bool) -> None:
    try:
        parsed = json.loads(raw)
        shots, film = parsed.get("shots", {}), parsed.get("film", {})
        if not (isinstance(shots, dict) and isinstance(film, dict)
                and all(isinstance(e, dict) for e in shots.values())):
            raise ValueError("wrong shape")
    except (ValueError, AttributeError) as exc:
        if strict:
            raise LockUnreadable(f"{path}: not a readable storyboard.lock ({exc}); gc keeps everything until "
                                 "it is fixed or rebuilt") from None
        warn(f"{path.name} is not a valid lock ({exc}); ignoring it")
        return
    data.shots.update(shots)
    data.film = film


def _merge_log(data: LockData, raw: bytes, path: Path, warn: Callable[[str], None]) -> None:
    """Apply the log's lines in order; a torn or foreign line (a killed build's last) is skipped."""
    if len(raw) > MAX_BYTES:
        warn(f"{path.name} is larger than {MAX_BYTES >> 20} MiB; ignoring it")
        return
    for line in raw.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if isinstance(record.get("shot"), str) and isinstance(record.get("entry"), dict):
            data.shots[record["shot"]] = record["entry"]
        elif isinstance(record.get("film"), dict):
            data.film = record["film"]


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
