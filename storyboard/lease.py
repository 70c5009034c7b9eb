"""Leases on the remote cache: when several machines miss the same key at once, one pays.

    leases/<key>/<generation>      {"host", "pid", "since", "token", "beat"}

Before submitting a shot, a machine creates `leases/<key>/0` with the store's own "create only
if absent" (S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`, `O_EXCL` on a shared folder):
exactly one machine succeeds. The others wait, polling for the action entry, and download it
once it is published. The holder rewrites its lease (a heartbeat) while it renders and deletes
it after publishing, or on failure. A create whose answer was lost (the client retried and heard
"it exists") is recognised by reading the lease back: its body holds this lease's own token.

A lease whose contents have not changed for `STORYBOARD_LEASE_SECONDS` (60 by default) of the
waiter's own clock belongs to a dead machine: the waiter takes over by creating the next
generation, `leases/<key>/1`, with the same conditional create, so two waiters cannot both take
over. Judging expiry by the waiter's clock, not a time written by the holder, makes it immune to
skewed clocks. The highest generation is the lease; lower ones are debris, deleted by the next
holder.

A store that cannot create conditionally (Azure and memory backends here; a read-only remote)
is warned about once and the build behaves as before leases: each machine renders its own
misses and publishes the result.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storyboard.cache import Cache
    from storyboard.remote import Remote

DEFAULT_SECONDS = 60.0
_CONDITIONAL = {"s3", "s3a", "gs", "gcs", "file", "local"}
"""Backends whose "create only if absent" is atomic: S3 (If-None-Match), GCS (ifGenerationMatch=0)
and a folder (O_EXCL)."""


def lease_seconds() -> float:
    """STORYBOARD_LEASE_SECONDS: how long a silent lease stays live (tests use 2-3 s)."""
    try:
        return max(0.5, float(os.environ.get("STORYBOARD_LEASE_SECONDS") or DEFAULT_SECONDS))
    except ValueError:
        return DEFAULT_SECONDS


def describe_holder(body: bytes) -> str:
    """'pid N on HOST (remote lease) since HH:MM:SS', as the local key lock says it."""
    try:
        who = json.loads(body)
        return f"pid {int(who['pid'])} on {str(who['host'])[:64]} (remote lease) since {str(who['since'])[:8]}"
    except (ValueError, KeyError, TypeError):
        return "another machine (remote lease)"


class Leases:
    """The lease protocol over one Remote; thread-safe like the Remote."""

    def __init__(self, remote: Remote, seconds: float | None = None) -> None:
        self.remote = remote
        self.store = _Store(remote)
        self.seconds = seconds or lease_seconds()
        self.poll = max(0.1, min(2.0, self.seconds / 10))
        protocols = {remote.fs.protocol} if isinstance(remote.fs.protocol, str) else set(remote.fs.protocol)
        self.conditional = bool(protocols & _CONDITIONAL)
        self._warned = False
        self._mutex = threading.Lock()

    def usable(self) -> bool:
        """Whether to lease now: a writable remote that is up and can create conditionally."""
        remote = self.remote
        if not remote.writable or remote._no_write or remote._down is not None:
            return False
        if not self.conditional:
            self._say_once(f"the remote cache {remote.url} cannot create a file only if it is absent, so "
                           "machines that miss the same shot at once may each render it (leases need "
                           "s3://, gs:// or a shared folder)")
        return self.conditional

    @contextmanager
    def claim(self, key: str, cache: Cache, on_wait: Callable[[str], None] = lambda holder: None,
              cancel: threading.Event | None = None) -> Iterator[dict[str, Any] | None]:
        """Yield None while this process holds the lease on `key` (render and publish inside),
        or the entry another machine published while this one waited (already in `cache`)."""
        if not self.usable():
            yield None
            return
        cancel = cancel or threading.Event()
        remote, store = self.remote, self.store
        seen: tuple[int, bytes] | None = None
        changed = time.monotonic()
        told = False
        first = True
        while True:
            if not first:
                if cancel.wait(self.poll):
                    from storyboard.executor import Cancelled

                    raise Cancelled("interrupted")
                entry = remote.fetch(key, cache)
                if entry is not None:
                    yield entry
                    return
            first = False
            try:
                generations = store.generations(key)
                top = generations[-1] if generations else None
                body = None if top is None else remote._read(store.path(key, top))
            except Exception as exc:  # noqa: BLE001 - the backend's own errors: build as before
                self._give_up(exc)
                yield None
                return
            if top is not None and body is None:
                continue  # released between listing and reading
            if top is not None:
                if seen != (top, body):
                    seen, changed = (top, body), time.monotonic()
                    if not told:
                        on_wait(describe_holder(body or b""))
                        told = True
                if time.monotonic() - changed < self.seconds:
                    continue
            lease = _Lease(self, key, 0 if top is None else top + 1)
            try:
                won = lease.create()
            except Exception as exc:  # noqa: BLE001
                self._give_up(exc)
                yield None
                return
            if not won:
                continue  # another machine was quicker: wait for it
            if top is not None:
                remote._warn(f"the lease on {key[:12]} ({describe_holder(body or b'')}) was silent for "
                             f"{self.seconds:g} s; this machine took it over")
            try:
                entry = remote.fetch(key, cache)  # published just before this machine's lease?
                if entry is None:
                    lease.start(below=generations)
            except BaseException:
                lease.release()
                raise
            if entry is not None:
                lease.release()
                yield entry
                return
            try:
                yield None
            finally:
                lease.release()
            return

    def _give_up(self, exc: Exception) -> None:
        """Leasing failed (the remote's other calls decide whether it is down): stop leasing."""
        self.conditional = False
        self._say_once(f"cannot take leases on the remote cache {self.remote.url} ({exc}); machines that "
                       "miss the same shot at once may each render it")

    def _say_once(self, message: str) -> None:
        with self._mutex:
            first, self._warned = not self._warned, True
        if first:
            self.remote._warn(message)


class _Store:
    """The lease's calls to the remote's backend, through the Remote's error handling."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def create(self, path: str, data: bytes) -> bool:
        """Write `path` only if it is absent, atomically (the lease's one primitive): True if written."""
        with self.remote._backend(f"leasing {path.rpartition('/')[2][:12]}"):
            try:
                if self.remote._local:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                    with os.fdopen(fd, "wb") as out:  # a reader may see it empty for a moment: still live
                        out.write(data)
                else:  # S3: If-None-Match: *; GCS: ifGenerationMatch=0 (its 412 is FileExistsError)
                    self.remote.fs.pipe_file(path, data, mode="create")
            except FileExistsError:
                return False
            except OSError as exc:  # S3's 409 ConditionalRequestConflict: another create is in flight
                if "ConditionalRequestConflict" in str(exc) or "PreconditionFailed" in str(exc):
                    return False
                raise
        return True

    def delete(self, path: str) -> None:
        """Remove `path` if there, quietly: a lease left behind only expires."""
        try:
            with self.remote._backend(f"releasing {path.rpartition('/')[2][:12]}"):
                self.remote.fs.rm_file(path)
            if self.remote._local:
                os.rmdir(Path(path).parent)  # the key's folder, once its last lease is gone
        except Exception:  # noqa: BLE001, S110 - gone already, or the remote failed: it expires
            pass

    def generations(self, key: str) -> list[int]:
        """The generations of `key`'s lease present on the remote, lowest first."""
        try:
            with self.remote._backend(f"listing leases of {key[:12]}"):
                names = self.remote.fs.ls(f"{self.remote._root}/leases/{key}", detail=False)
        except FileNotFoundError:
            return []
        return sorted(int(name) for name in (n.rstrip("/").rpartition("/")[2] for n in names) if name.isdigit())

    def path(self, key: str, generation: int) -> str:
        return f"{self.remote._root}/leases/{key}/{generation}"


class _Lease:
    """One held generation of a key's lease, with the thread that keeps it alive."""

    def __init__(self, leases: Leases, key: str, generation: int) -> None:
        self.leases, self.key, self.generation = leases, key, generation
        self.store = leases.store
        self.path = self.store.path(key, generation)
        self.token = uuid.uuid4().hex
        self.since = time.strftime("%H:%M:%S")
        self.beat = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def body(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": self.since,
                           "token": self.token, "beat": self.beat}).encode()

    def create(self) -> bool:
        """Create this generation; True if this process holds it, even when the store's answer to
        the create was lost and the client's retry was refused because the first try had won."""
        body = self.body()
        return self.store.create(self.path, body) or self.leases.remote._read(self.path) == body

    def start(self, below: list[int]) -> None:
        """Delete the dead holders' generations, then renew every quarter of the lease."""
        for old in below:
            if old < self.generation:
                self.store.delete(self.store.path(self.key, old))
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease-{self.key[:8]}", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        remote = self.leases.remote
        while not self._stop.wait(self.leases.seconds / 4):
            try:
                if any(g > self.generation for g in self.store.generations(self.key)):
                    self.lost = True
                    remote._warn(f"lost the lease on {self.key[:12]} (this machine was silent for too long); "
                                 "another machine may render the same shot")
                    return
                self.beat += 1
                remote._put(self.path, self.body())
            except Exception:  # noqa: BLE001 - one missed beat is not fatal; the next one retries
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.store.delete(self.path)
