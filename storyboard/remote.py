"""The remote cache: a team's shared copy of the local cache's actions and objects at an fsspec URL.

    s3://bucket/prefix/              (or gs://…, file:///mnt/share, /mnt/share)
      actions/<key>.json             the same entry the local cache holds for <key>
      objects/ab/ab12…               the same objects, named by their sha256

The remote speeds up a build and is never trusted: every object downloaded is hashed before
it enters the local cache, and if the remote cannot be reached the build warns and goes on
locally (unless the remote is required). An upload sends the objects first and the action
entry last, so a reader never sees an entry whose objects are missing. Each file is written
atomically: a single PUT on object stores, and a temporary name then a rename elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.cache import Cache
from storyboard.errors import StoryboardError

if TYPE_CHECKING:
    from storyboard.lockfile import LockFile

_CHUNK = 1 << 20
_SHA = re.compile(r"[0-9a-f]{64}")
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}
"""Backends where one upload is all-or-nothing for readers, so no temporary name is needed."""

Progress = Callable[[int, int, str], None]
"""progress(done, total, what): called after each object or action entry is handled."""


class RemoteError(StoryboardError):
    """The remote cache is required (--require-remote, push, pull) but cannot be used."""

    exit_code = 1


@dataclass
class SyncReport:
    """What push or pull transferred. `missing` lists the keys it could not transfer."""

    actions: int = 0
    objects: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)


class _Unavailable(Exception):
    """A backend call failed for another reason than "not there"."""


def _print_warning(message: str) -> None:
    print(f"storyboard: warning: {message}", file=sys.stderr)


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


class Remote:
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
            40 s, and only once: the remote is then marked down.

    Raises:
        RemoteError: the URL's protocol is unknown or its fsspec backend is not installed.

    A remote that fails is marked down for the rest of this object's life: the first failure
    warns, later calls return at once. A failed write stops publishing but not reading.
    Thread-safe: the executor's threads share one Remote.
    """

    def __init__(self, url: str, *, writable: bool = True, required: bool = False,
                 warn: Callable[[str], None] = _print_warning,
                 storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.writable = writable
        self.required = required
        self._warn = warn
        self._mutex = threading.Lock()
        self._down: str | None = None
        self._no_write = False
        self._probed = False
        self._corrupt: set[str] = set()
        self._leases: Any = None
        self.fs, self._root = _open_fs(url, storage_options)
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        self._local = bool(protocols & {"file", "local"})
        self._atomic_put = bool(protocols & _ATOMIC_PUT)

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

    # ---- the backend: the only place that calls fsspec -------------------------------------

    @contextmanager
    def _backend(self, doing: str) -> Iterator[None]:
        """Turn a backend failure into _Unavailable; "not there" stays FileNotFoundError."""
        try:
            yield
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise _Unavailable(f"{doing}: {_reason(exc)}; the credentials need read access to the whole "
                               "prefix (on S3, s3:GetObject and s3:ListBucket, without which a miss is "
                               "'access denied'), and write access to publish") from exc
        except Exception as exc:  # each backend has its own errors: botocore, aiohttp, gcsfs, OSError
            raise _Unavailable(f"{doing}: {_reason(exc)}") from exc

    def _probe(self) -> None:
        """Once: a folder remote must exist, so an unmounted share is not taken for an empty cache."""
        if self._probed:
            return
        if self._local and not Path(self._root).is_dir():
            raise _Unavailable(f"the folder {self._root} does not exist; create it or mount the share")
        self._probed = True

    def _read(self, path: str) -> bytes | None:
        try:
            with self._backend(f"reading {path.rpartition('/')[2][:12]}"):
                return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def _size(self, path: str) -> int | None:
        try:
            with self._backend(f"checking {path.rpartition('/')[2][:12]}"):
                return self.fs.info(path).get("size")
        except FileNotFoundError:
            return None

    def _put(self, path: str, source: Path | bytes) -> None:
        """Write one file so a reader sees all of it or nothing."""
        with self._backend(f"uploading {path.rpartition('/')[2][:12]}"):
            if self._local:
                _write_local(Path(path), source)
            elif self._atomic_put:
                self._send(path, source)
            else:
                tmp = f"{path}.{uuid.uuid4().hex}.tmp"
                self._send(tmp, source)
                self.fs.mv(tmp, path)

    def _send(self, path: str, source: Path | bytes) -> None:
        if isinstance(source, bytes):
            self.fs.pipe_file(path, source)
        else:
            self.fs.put_file(str(source), path)

    def _object_path(self, sha: str) -> str:
        return f"{self._root}/objects/{sha[:2]}/{sha}"

    def _action_path(self, key: str) -> str:
        return f"{self._root}/actions/{key}.json"

    # ---- failure policy --------------------------------------------------------------------

    def _unreachable(self, reason: str) -> None:
        """Mark the remote down: warn the first time, or raise if it is required."""
        message = f"the remote cache {self.url} is unreachable ({reason})"
        if self.required:
            raise RemoteError(f"{message}; check the network and the credentials, or build without "
                              "--require-remote to continue with the local cache")
        with self._mutex:
            first, self._down = self._down is None, reason
        if first:
            self._warn(f"{message}; continuing with the local cache only")

    def _unwritable(self, reason: str) -> None:
        """Stop publishing: warn the first time, or raise if the remote is required."""
        message = f"cannot publish to the remote cache {self.url} ({reason})"
        if self.required:
            raise RemoteError(f"{message}; check the credentials' write access, or set "
                              "remote_write = false")
        with self._mutex:
            first, self._no_write = not self._no_write, True
        if first:
            self._warn(f"{message}; not publishing for the rest of this build (the local cache keeps "
                       "everything; `storyboard push` uploads it later)")


def _open_fs(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """The fsspec filesystem and the root path inside it, with short timeouts on S3."""
    from fsspec.core import url_to_fs
    from fsspec.utils import get_protocol

    protocol = get_protocol(url)
    options = dict(storage_options or {})
    if protocol in ("s3", "s3a"):
        # botocore's "legacy" max_attempts counts retries: one retry rides out a lone 503 SlowDown,
        # and a refused connection still fails in about a second. Fresh dicts: botocore edits them.
        options["config_kwargs"] = {"connect_timeout": 3, "read_timeout": 10, "retries": {"max_attempts": 1},
                                    **options.get("config_kwargs", {})}
        client = dict(options.get("client_kwargs", {}))
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and "endpoint_url" not in client and "endpoint_url" not in options:
            client["endpoint_url"] = endpoint
        options["client_kwargs"] = client
        options.setdefault("skip_instance_cache", True)
        options.setdefault("use_listings_cache", False)
    elif protocol in ("gs", "gcs"):
        options.setdefault("skip_instance_cache", True)
        options.setdefault("use_listings_cache", False)  # leases poll listings: a cached one never changes
        if os.environ.get("STORAGE_EMULATOR_HOST", "default") != "default":
            # An emulator checks no credentials, and looking for them may ask the GCE metadata server.
            options.setdefault("token", "anon")
            return _open_gcs_emulated(url, options)
    elif protocol in ("file", "local") and "://" not in url:
        url = os.path.expanduser(url)
    try:
        fs, root = url_to_fs(url, **options)
    except ImportError as exc:
        extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}.get(protocol)
        hint = f"pip install 'storyboard[{extra}]'" if extra else f"install the fsspec backend for {protocol}://"
        raise RemoteError(f"remote cache {url}: {protocol}:// needs a package that is not installed; "
                          f"{hint}") from exc
    except (ValueError, TypeError) as exc:
        raise RemoteError(f"remote cache {url}: {exc}; use s3://bucket/prefix, gs://bucket/prefix, "
                          "file:///path or a folder path") from exc
    if protocol in ("s3", "s3a"):
        # s3fs retries read timeouts itself, 5 times by default: a server that accepts connections
        # but never answers would stall the build for minutes. Twice keeps a flaky download alive.
        fs.retries = 2
    return fs, str(root).rstrip("/")


def _open_gcs_emulated(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    """gcsfs's plain JSON-API filesystem: emulators speak no gRPC, and gcsfs's default class asks a
    gRPC service about each bucket's layout (for zonal buckets), retrying for a minute per call."""
    try:
        from gcsfs.core import GCSFileSystem
    except ImportError as exc:
        raise RemoteError(f"remote cache {url}: gs:// needs a package that is not installed; "
                          "pip install 'storyboard[gcs]'") from exc
    fs = GCSFileSystem(**options)
    return fs, str(fs._strip_protocol(url)).rstrip("/")


def _write_local(path: Path, source: Path | bytes) -> None:
    """Temp file in the same folder, fsync, rename; created 0666 less the umask, so a shared
    folder's files are readable by the team (mkstemp would make them 0600)."""
    import shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, bytes):
                out.write(source)
            else:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
