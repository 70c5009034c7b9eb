"""The remote cache's store: one fsspec filesystem at a URL, and what to do when it fails.

Every call to the backend goes through `RemoteStore._backend`, which turns the backend's own
errors (botocore, aiohttp, gcsfs, OSError) into one kind, so the remote's failure policy lives
in one place: a remote that cannot be reached is marked down (warned once, or an error if it is
required); one that cannot be written stops publishing. Each file is written atomically: a single
PUT on object stores, and a temporary name then a rename elsewhere. `Remote` (storyboard/remote.py)
lays the cache out on it and storyboard/lease.py takes leases through it.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from storyboard.errors import StoryboardError

_CHUNK = 1 << 20
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}
"""Backends where one upload is all-or-nothing for readers, so no temporary name is needed."""


class RemoteError(StoryboardError):
    """The remote cache is required (--require-remote, push, pull) but cannot be used."""

    exit_code = 1


class _Unavailable(Exception):
    """A backend call failed for another reason than "not there"."""


def _print_warning(message: str) -> None:
    print(f"storyboard: warning: {message}", file=sys.stderr)


class RemoteStore:
    """An fsspec filesystem at `url` with the remote's failure policy (see Remote for the arguments).

    Thread-safe: the executor's threads share one store.
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
        self.fs, self._root = _open_fs(url, storage_options)
        protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
        self._local = bool(protocols & {"file", "local"})
        self._atomic_put = bool(protocols & _ATOMIC_PUT)

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
        try:  # gcsfs sets no timeout at all: a server that never answers would stall the build for good
            from aiohttp import ClientTimeout

            options.setdefault("requests_timeout", ClientTimeout(sock_connect=3, sock_read=10))
        except ImportError:  # gcsfs is not installed either: url_to_fs says so below
            pass
        if os.environ.get("STORAGE_EMULATOR_HOST") not in (None, "", "default"):  # as gcsfs reads it
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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
