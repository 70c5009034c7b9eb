"""Objects are checked by their hash, read again only when their size or mtime says they changed."""

from __future__ import annotations

import os

import storyboard.cache as cache_module
from storyboard.cache import Cache


def test_an_unchanged_memo_object_is_not_read_again_and_a_changed_one_is_refused(tmp_path, monkeypatch):
    cache = Cache(tmp_path / "cache")
    produced = cache.tmp_path(".bin")
    produced.write_bytes(b"segment " * 1000)
    path = cache.memo_put("segment-1", produced)

    reads = []
    real = cache_module.file_sha256
    monkeypatch.setattr(cache_module, "file_sha256", lambda p: reads.append(p) or real(p))
    assert cache.memo_get("segment-1") == path
    cache.save_digests()  # as a build does when it ends
    assert Cache(tmp_path / "cache").memo_get("segment-1") == path  # a new process: the digest memo on disk
    assert reads == []

    path.write_bytes(b"SEGMENT " * 1000)  # the same size, other bytes, a new mtime
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert cache.memo_get("segment-1") is None
    assert len(reads) == 1 and not path.exists()  # read once, found corrupt, removed
