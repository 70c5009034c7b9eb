"""Files written so a reader sees the old bytes or the new ones, never a part; and read whole.

The cache, the lock and the reports write through these (temp file in the same folder, fsync,
rename); a concurrent gc may remove an empty folder meanwhile, so the folder is made again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
_SMALL = 1 << 16
"""More than an action entry or a memo holds: read in one call."""


def read_bytes(name: str) -> bytes:
    """A regular file's bytes through the os module: a plan reads an action a shot, and open()'s
    buffered, decoding file object was most of it. A short read of a regular file is its end, so
    a small file costs three system calls (open, read, close)."""
    fd = os.open(name, os.O_RDONLY)
    try:
        chunks = [os.read(fd, _SMALL)]
        while len(chunks[-1]) == (_SMALL if len(chunks) == 1 else _CHUNK):
            chunks.append(os.read(fd, _CHUNK))
    finally:
        os.close(fd)
    return b"".join(chunks)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the new one, never a part."""
    import tempfile  # with shutil, ≈ 5 ms of a plan's start, which writes nothing

    fd, tmp = retry_vanished_folder(
        path.parent, lambda: tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a lock or report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with quiet():
            os.unlink(tmp)
        raise


_RETRIES = 5


def retry_vanished_folder(folder: Path, act: Any) -> Any:
    """mkdir `folder`, then `act()`; again if a concurrent gc removed the (empty) folder in between."""
    for attempt in range(_RETRIES):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return act()
        except FileNotFoundError:
            if attempt == _RETRIES - 1 or folder.is_dir():
                raise
    raise AssertionError("unreachable")


def _read_umask() -> int:
    """The process umask, read once at import (os.umask is process-wide, so never from threads)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write pretty, sorted JSON."""
    atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


@contextmanager
def quiet() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass


