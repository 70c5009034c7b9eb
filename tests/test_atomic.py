"""Whole-file reads and atomic writes (storyboard.atomic), at the sizes where the read loop turns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storyboard.atomic import _CHUNK, _SMALL, atomic_write_bytes, read_bytes


@pytest.mark.parametrize("size", [0, 1, _SMALL - 1, _SMALL, _SMALL + 1, _SMALL + _CHUNK, _SMALL + _CHUNK + 1,
                                  3 * _CHUNK + 5])
def test_read_bytes_reads_every_byte(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    atomic_write_bytes(tmp_path / "f", data)
    assert read_bytes(str(tmp_path / "f")) == data


def test_read_bytes_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_bytes(str(tmp_path / "missing"))
