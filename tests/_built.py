"""A board built once per test module, copied for each test that changes it.

A build renders and stitches (seconds of ffmpeg); copying its folder, cache included, takes
milliseconds. The copy is the same board in another folder: the build stamp is named by the board's
absolute path, so a copy never answers from the original's stamp, and the asset-digest memo (keyed
on paths) is dropped so every digest is taken afresh from the copy's own files.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fake_provider import FakeProvider


@contextmanager
def fake_registered() -> Iterator[type[FakeProvider]]:
    """`provider = "fake"` registered for a module-scoped build (a test's own build uses `fake_provider`)."""
    import storyboard.providers as providers

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(providers.BUILTIN, "fake", "tests.fake_provider:FakeProvider")
        FakeProvider.reset()
        yield FakeProvider
        FakeProvider.reset()


def copy_built(board: Path, into: Path) -> Path:
    """A private copy of a built board's folder (its cache, lock and film too) under `into`."""
    copy = into / board.parent.name
    shutil.copytree(board.parent, copy)
    (copy / ".storyboard" / "hashes.json").unlink(missing_ok=True)
    return copy / board.name
