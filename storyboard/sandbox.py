"""The board's folder is the sandbox: every path a storyboard names for writing stays inside it.

A storyboard is untrusted input (a cloned repository, a file from a chat). It may name where
the film goes and where a shared cache lives, so those names are checked twice: their shape
when the file is validated (`check_shape`, no absolute path, no `..` escape), and the real
path of every folder that already exists on the way (`inside`), so a committed `build/`
symlink to `~/.ssh` is caught before anything is written. A path given on the command line
or in the environment is the user's own choice and is not checked here.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from pathlib import Path, PurePosixPath

from storyboard.errors import StoryboardFileError

REMOTE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
"""Remote caches a storyboard file may name itself: cloud stores, never a folder elsewhere."""

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class OutsideError(StoryboardFileError):
    """A path the storyboard names for writing leaves its folder (exit 2)."""


def check_shape(value: str) -> str | None:
    """Why `value` (a relative path from the storyboard file) cannot name a place to write, or None."""
    if not value.strip():
        return "is empty"
    if "\x00" in value:
        return "contains a NUL byte"
    if PurePosixPath(value).is_absolute() or re.match(r"^[a-zA-Z]:[\\/]", value) or value.startswith("\\"):
        return "is an absolute path; it must be relative to the storyboard's folder"
    normal = posixpath.normpath(value.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return "leaves the storyboard's folder ('..'); it must stay inside it"
    if normal == ".":
        return "names the storyboard's folder itself, not a file inside it"
    return None


def check_remote_shape(value: str) -> str | None:
    """Why a remote cache named in the storyboard file is refused, or None.

    A cloud URL is fine (its credentials come from the environment); a folder must be inside
    the board's folder. `file://`, chained (`a::b`) and other URLs are refused: the user can
    still give them with --remote or STORYBOARD_REMOTE.
    """
    match = _SCHEME.match(value)
    if "::" in value:
        return "chains fsspec protocols ('::'), which a storyboard file may not do"
    if match:
        scheme = match.group(1).lower()
        if scheme in REMOTE_SCHEMES:
            return None
        return (f"uses {scheme}://, which a storyboard file may not name; use s3://, gs:// or az://, "
                "or a folder inside the storyboard's folder")
    return check_shape(value)


def inside(root: Path, relative: str | Path, what: str, *, folder: bool = False) -> Path:
    """The absolute path of `relative` under `root`, refusing any escape, symlinks included.

    Every part of the path that exists is resolved to its real location, which must lie
    under the real `root`. A file's last part must not be a symlink or a folder; with
    `folder`, the path names a folder (followed, then checked). Nothing is created.

    Raises:
        OutsideError: the path leaves `root` (names `what`, the path and where it leads).
    """
    if (reason := check_shape(str(relative))) is not None:
        raise OutsideError(f"{what} '{relative}' {reason}")
    real_root = Path(os.path.realpath(root))
    target = real_root / relative
    if folder:
        real = Path(os.path.realpath(target))
        if not real.is_relative_to(real_root):
            raise OutsideError(f"{what} '{relative}' leads outside the storyboard's folder (to {real}) "
                               "through a symbolic link; name it with --remote or STORYBOARD_REMOTE instead")
        return real
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise OutsideError(f"{what} '{relative}': cannot check it: {exc.strerror or exc}") from None
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise OutsideError(f"{what} '{relative}' is a symbolic link (to {os.readlink(target)}); storyboard "
                           "writes only real files inside the storyboard's folder: remove the link")
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutsideError(f"{what} '{relative}' is a folder; name a file inside it")
    real_parent = Path(os.path.realpath(target.parent))
    if not real_parent.is_relative_to(real_root):
        raise OutsideError(f"{what} '{relative}' leads outside the storyboard's folder (to {real_parent}) "
                           "through a symbolic link; make it a real folder inside the storyboard's folder")
    return real_parent / target.name
