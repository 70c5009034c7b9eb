"""The remote cache: a team's shared copy of the local cache's actions and objects at an fsspec URL.

    s3://bucket/prefix/              (or gs://…, file:///mnt/share, /mnt/share)
      actions/<key>.json             the same entry the local cache holds for <key>
      objects/ab/ab12…               the same objects, named by their sha256

The remote speeds up a build and is never trusted: every object downloaded is hashed before
it enters the local cache, and if the remote cannot be reached the build warns and goes on
locally (unless the remote is required). An upload sends the objects first and the action
entry last, so a reader never sees an entry whose objects are missing. The store underneath,
with its atomic writes and its failure policy, is storyboard/remote_store.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.cache import Cache
from storyboard.remote_store import _CHUNK, RemoteError, RemoteStore, _print_warning, _Unavailable

if TYPE_CHECKING:
    from storyboard.lockfile import LockFile

__all__ = ["Progress", "Remote", "RemoteError", "SyncReport", "lock_keys", "remote_from"]

_SHA = re.compile(r"[0-9a-f]{64}")

Progress = Callable[[int, int, str], None]
"""progress(done, total, what): called after each object or action entry is handled."""


@dataclass
class SyncReport:
    """What push or pull transferred. `missing` lists the keys it could not transfer."""

    actions: int = 0
    objects: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)


def remote_from(board_remote: str | None, cli_remote: str | None, no_remote: bool,
                env: Mapping[str, str] = os.environ) -> str | None:
    """The remote URL to use: --no-remote > --remote > STORYBOARD_REMOTE > [cache] remote."""
    if no_remote:
        return None
    return cli_remote or env.get("STORYBOARD_REMOTE") or board_remote or None


def lock_keys(lock: LockFile) -> list[str]:
    """The keys a lock pins, for push and pull: every shot's, then the film's."""
    keys = [entry["key"] for _, entry in sorted(lock.shots.items()) if entry.get("key")]
    if lock.film.get("key"):
        keys.append(lock.film["key"])
    return keys


class Remote(RemoteStore):
    """A remote cache at an fsspec URL, shared by every machine of a team.

    Args:
        url: `s3://bucket/prefix`, `gs://…`, `file:///path` or a plain path (a folder that exists).
        writable: publish and push; False for a read-only mode (CI with `remote_write = false`).
        required: raise RemoteError instead of warning and going on locally when the remote fails.
        warn: receives each warning as one sentence.
        storage_options: passed to the fsspec filesystem (credentials, `endpoint_url`, …). For S3,
            the endpoint defaults to AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL; connecting times out
            after 3 s and an unanswered request after 10 s (`config_kwargs` overrides both), with
            one retry. A refused connection costs a build about a second, a silent server about
            40 s, and only once: the remote is then marked down. On GCS, connecting times out after
            3 s and a silent read after 10 s (`requests_timeout`), and gcsfs retries 5 times.

    Raises:
        RemoteError: the URL's protocol is unknown or its fsspec backend is not installed.

    A remote that fails is marked down for the rest of this object's life: the first failure
    warns, later calls return at once. A failed write stops publishing but not reading.
    Thread-safe: the executor's threads share one Remote.
    """

    def __init__(self, url: str, *, writable: bool = True, required: bool = False,
                 warn: Callable[[str], None] = _print_warning,
                 storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(url, writable=writable, required=required, warn=warn, storage_options=storage_options)
        self._corrupt: set[str] = set()
        self._leases: Any = None

    def __repr__(self) -> str:
        return f"Remote({self.url!r}, writable={self.writable}, required={self.required})"

    # ---- one shot at a time: the build's calls ------------------------------------------

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The remote's action entry for `key` (its objects are not downloaded), or None."""
        if self._down is not None or not _SHA.fullmatch(key):
            return None
        try:
            self._probe()
            return self._read_action(key)
        except _Unavailable as exc:
            self._unreachable(str(exc))
            return None

    def fetch(self, key: str, cache: Cache) -> dict[str, Any] | None:
        """Download a hit into `cache`: every object verified by its hash, then the entry.

        Returns the entry, or None on a miss, when the remote is down, or when an object is
        missing or corrupt there (warned; nothing of the entry enters the cache).
        """
        entry = self.lookup(key)
        if entry is None:
            return None
        try:
            if self._download(entry, cache) is None:
                return None
        except _Unavailable as exc:
            self._unreachable(str(exc))
            return None
        cache.put_action(key, entry)
        return entry

    def publish(self, key: str, entry: dict[str, Any], cache: Cache) -> None:
        """Upload a freshly generated entry: its objects (unless there already), then the entry."""
        if not self.writable or self._no_write or self._down is not None:
            return
        try:
            self._probe()
            self._upload(key, entry, cache, lambda what: None, SyncReport())
        except _Unavailable as exc:
            self._unwritable(str(exc))

    def lease(self, key: str, cache: Cache, on_wait: Callable[[str], None] = lambda holder: None,
              cancel: threading.Event | None = None) -> Any:
        """A context: None while this machine holds `key`'s lease (render, publish inside), or the
        entry another machine published meanwhile. See storyboard/lease.py."""
        with self._mutex:
            if self._leases is None:
                from storyboard.lease import Leases

                self._leases = Leases(self)
        return self._leases.claim(key, cache, on_wait, cancel)

    # ---- many keys at once: push and pull -------------------------------------------------

    def push(self, cache: Cache, keys: Iterable[str], progress: Progress | None = None) -> SyncReport:
        """Upload each key's objects and entry from `cache`; keys not cached locally are `missing`.

        Raises:
            RemoteError: the remote is read-only, or cannot be reached or written.
        """
        if not self.writable:
            raise RemoteError(f"the remote cache {self.url} is read-only (remote_write = false); "
                              "nothing was pushed")
        report = SyncReport()
        entries: dict[str, dict[str, Any]] = {}
        for key in dict.fromkeys(keys):
            entry = cache.get_action(key) if _SHA.fullmatch(key) else None
            if entry is None or not _well_formed(key, entry):
                report.missing.append(key)
            else:
                entries[key] = entry
        tick = _counter(sum(_items(entry) for entry in entries.values()), progress)
        try:
            self._probe()
            for key, entry in entries.items():
                if not self._upload(key, entry, cache, tick, report):
                    report.missing.append(key)
                    for _ in range(_items(entry)):
                        tick(f"skipped {key[:12]}")
        except _Unavailable as exc:
            raise RemoteError(f"cannot push to the remote cache {self.url} ({exc}); pushed "
                              f"{report.objects} objects and {report.actions} entries before it failed") from None
        return report

    def pull(self, cache: Cache, keys: Iterable[str], progress: Progress | None = None) -> SyncReport:
        """Download each key's entry and objects into `cache`, verified; keys the remote lacks
        (or holds corrupt) are `missing`. Keys already cached locally are skipped.

        Raises:
            RemoteError: the remote cannot be reached.
        """
        report = SyncReport()
        try:
            self._probe()
            wanted: dict[str, dict[str, Any]] = {}
            for key in dict.fromkeys(keys):
                if _SHA.fullmatch(key) and cache.get_action(key) is not None:
                    continue
                entry = self._read_action(key) if _SHA.fullmatch(key) else None
                if entry is None:
                    report.missing.append(key)
                else:
                    wanted[key] = entry
            tick = _counter(sum(_items(entry) for entry in wanted.values()), progress)
            for key, entry in wanted.items():
                ticked = 0

                def on_object(sha: str, size: int | None) -> None:
                    nonlocal ticked
                    ticked += 1
                    if size is not None:
                        report.objects += 1
                        report.bytes += size
                    tick(f"object {sha[:12]}" + (" (already here)" if size is None else ""))

                if self._download(entry, cache, on_object) is None:
                    report.missing.append(key)
                    for _ in range(_items(entry) - ticked):
                        tick(f"skipped {key[:12]}")
                    continue
                cache.put_action(key, entry)
                report.actions += 1
                tick(f"action {key[:12]}")
        except _Unavailable as exc:
            raise RemoteError(f"cannot pull from the remote cache {self.url} ({exc}); pulled "
                              f"{report.actions} entries before it failed") from None
        return report

    # ---- transfers ------------------------------------------------------------------------

    def _download(self, entry: dict[str, Any], cache: Cache,
                  on_object: Callable[[str, int | None], None] = lambda sha, size: None) -> int | None:
        """Fetch the entry's objects the cache lacks into tmp files, verify all, then adopt all.

        on_object(sha, size) follows each object, size None for one the cache already had.
        Returns the bytes downloaded, or None (warned) if an object is missing or corrupt.
        """
        staged: dict[str, Path] = {}
        total = 0
        try:
            for sha in dict.fromkeys(entry["outputs"].values()):
                if cache.intact(sha):
                    on_object(sha, None)
                    continue
                tmp = staged[sha] = cache.tmp_path()
                digest = self._get_object(sha, tmp)
                if digest is None:
                    self._warn(f"remote object {sha} is missing; ignoring the entry that names it")
                    return None
                if digest != sha:
                    self._corrupt.add(sha)
                    self._warn(f"remote object {sha} is corrupt; ignoring it")
                    return None
                size = tmp.stat().st_size
                total += size
                on_object(sha, size)
            for tmp in staged.values():
                cache.adopt(tmp)
            return total
        finally:
            for tmp in staged.values():
                if tmp.exists():
                    tmp.unlink()

    def _get_object(self, sha: str, dest: Path) -> str | None:
        """Stream one object into `dest`; its sha256, or None if the remote does not have it."""
        digest = hashlib.sha256()
        path = self._object_path(sha)
        with open(dest, "wb") as out:
            try:
                with self._backend(f"downloading {sha[:12]}"):
                    src = self.fs.open(path, "rb")
            except FileNotFoundError:
                return None
            with src:
                while True:
                    with self._backend(f"downloading {sha[:12]}"):
                        chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
        return digest.hexdigest()

    def _upload(self, key: str, entry: dict[str, Any], cache: Cache, tick: Callable[[str], None],
                report: SyncReport) -> bool:
        """Objects first, then the entry; False (warned) if a local object is missing or corrupt."""
        shas = list(dict.fromkeys(entry["outputs"].values()))
        broken = next((sha for sha in shas if not cache.intact(sha)), None)
        if broken is not None:
            self._warn(f"local object {broken} is missing or corrupt; not publishing {key[:12]}")
            return False
        for sha in shas:
            local = cache.object_path(sha)
            size = local.stat().st_size
            # A copy seen corrupt is replaced even when its size looks right: publishing heals it.
            there = sha not in self._corrupt and self._size(self._object_path(sha)) == size
            if not there:
                self._put(self._object_path(sha), local)
                report.objects += 1
                report.bytes += size
            tick(f"object {sha[:12]}" + (" (already there)" if there else ""))
        data = (json.dumps(entry, indent=1, sort_keys=True) + "\n").encode()
        there = self._read(self._action_path(key)) == data
        if not there:
            self._put(self._action_path(key), data)
            report.actions += 1
            report.bytes += len(data)
        tick(f"action {key[:12]}" + (" (already there)" if there else ""))
        return True

    def _read_action(self, key: str) -> dict[str, Any] | None:
        data = self._read(self._action_path(key))
        if data is None:
            return None
        try:
            entry = json.loads(data)
        except ValueError:
            entry = None
        if not _well_formed(key, entry):
            self._warn(f"remote action {key} is not a valid entry; ignoring it")
            return None
        return entry

    def _object_path(self, sha: str) -> str:
        return f"{self._root}/objects/{sha[:2]}/{sha}"

    def _action_path(self, key: str) -> str:
        return f"{self._root}/actions/{key}.json"


def _well_formed(key: str, entry: Any) -> bool:
    """An entry names its objects by sha256 (never a path) and, if it says, this key."""
    if not isinstance(entry, dict) or entry.get("key", key) != key:
        return False
    outputs = entry.get("outputs")
    return (isinstance(outputs, dict) and bool(outputs)
            and all(isinstance(sha, str) and _SHA.fullmatch(sha) for sha in outputs.values()))


def _items(entry: dict[str, Any]) -> int:
    """How many progress steps an entry takes: its distinct objects, then itself."""
    return len(set(entry["outputs"].values())) + 1


def _counter(total: int, progress: Progress | None) -> Callable[[str], None]:
    done = 0

    def tick(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, what)

    return tick
