"""GCS as the remote cache and the leases' store: the loopback fake of its JSON API, driven by gcsfs.

The protocol's own tests (three machines, a killed holder, racing takeovers) run on GCS in
test_lease.py; here: that the fake behaves as GCS does where the leases depend on it, that the
remote cache works on gs://, and what only GCS needs (a lost answer to a create).
"""

from __future__ import annotations

import threading

import httpx
import pytest

from storyboard.cache import Cache
from storyboard.lease import _Store
from storyboard.remote import Remote
from tests.fakes._kit import Fault
from tests.fakes.gcs_server import GcsBucket, gcs, gcs_server  # noqa: F401 - the fake's fixtures
from tests.test_lease import entry_in


@pytest.fixture
def fs(gcs: GcsBucket):  # noqa: F811
    """gcsfs as the remote cache opens it (STORAGE_EMULATOR_HOST set by the `gcs` fixture)."""
    return Remote(gcs.url("cache")).fs


def test_of_many_conditional_creates_exactly_one_wins_and_the_object_keeps_its_generation(gcs, fs):  # noqa: F811
    path = f"{gcs.bucket}/cache/leases/k/0"
    start = threading.Barrier(12)
    won: list[bytes] = []

    def race(n: int) -> None:
        body = f"racer {n}".encode()
        start.wait()
        try:
            fs.pipe_file(path, body, mode="create")
        except FileExistsError:
            return
        won.append(body)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert gcs.objects() == {"cache/leases/k/0": won[0]}
    assert gcs.fake.count("upload") == 12
    assert fs.info(path)["generation"] == str(gcs.fake.generation(gcs.bucket, "cache/leases/k/0"))


def test_generations_grow_with_every_write_and_guard_writes_and_deletes(gcs, fs):  # noqa: F811
    name = "cache/actions/a.json"
    fs.pipe_file(f"{gcs.bucket}/{name}", b"one")
    first = gcs.fake.generation(gcs.bucket, name)
    fs.pipe_file(f"{gcs.bucket}/{name}", b"two")
    second = gcs.fake.generation(gcs.bucket, name)
    assert first is not None and second is not None and second > first
    upload = f"{gcs.fake.url}/upload/storage/v1/b/{gcs.bucket}/o"
    stale = httpx.post(upload, params={"uploadType": "media", "name": name, "ifGenerationMatch": str(first)},
                       content=b"three")
    assert stale.status_code == 412 and stale.json()["error"]["errors"][0]["reason"] == "conditionNotMet"
    fresh = httpx.post(upload, params={"uploadType": "media", "name": name, "ifGenerationMatch": str(second)},
                       content=b"three")
    assert fresh.status_code == 200 and int(fresh.json()["generation"]) > second
    obj = f"{gcs.fake.url}/storage/v1/b/{gcs.bucket}/o/{name.replace('/', '%2F')}"
    assert httpx.delete(obj, params={"ifGenerationMatch": str(second)}).status_code == 412
    assert fs.cat_file(f"{gcs.bucket}/{name}") == b"three"
    assert httpx.delete(obj, params={"ifGenerationMatch": fresh.json()["generation"]}).status_code == 204
    assert not fs.exists(f"{gcs.bucket}/{name}")


def test_listings_follow_prefixes_delimiters_and_pages(gcs, fs):  # noqa: F811
    for name in ("leases/k/0", "leases/k/1", "leases/k/10", "leases/j/0", "actions/x.json", "top"):
        fs.pipe_file(f"{gcs.bucket}/cache/{name}", name.encode())
    gcs.fake.page_limit = 2  # gcsfs must follow nextPageToken
    try:
        assert fs.ls(f"{gcs.bucket}/cache/leases/k", detail=False) == [
            f"{gcs.bucket}/cache/leases/k/{g}" for g in ("0", "1", "10")]
        assert sorted(fs.ls(f"{gcs.bucket}/cache", detail=False)) == [
            f"{gcs.bucket}/cache/{d}" for d in ("actions", "leases", "top")]
        assert len(fs.find(f"{gcs.bucket}/cache")) == 6
        assert gcs.fake.count("list") > 3
    finally:
        gcs.fake.page_limit = 1000
    assert fs.isdir(f"{gcs.bucket}/cache/leases") and fs.isfile(f"{gcs.bucket}/cache/top")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{gcs.bucket}/cache/leases/nothing")


def test_reads_are_ranged_and_big_uploads_resumable_and_conditional(gcs, fs):  # noqa: F811
    data = bytes(range(256)) * 40
    path = f"{gcs.bucket}/cache/objects/ab/big"
    fs.pipe_file(path, data, chunksize=1000, mode="create")  # eleven chunks, each answered 308
    assert fs.cat_file(path) == data
    assert fs.cat_file(path, start=1000, end=1010) == data[1000:1010]
    with fs.open(path, "rb", block_size=512) as f:
        f.seek(5000)
        assert f.read(700) == data[5000:5700]
    bodies = [b["query"]["uploadType"] for b in gcs.fake.bodies("upload")]
    assert bodies[0] == "resumable" and len(bodies) == 1 + 11
    with pytest.raises(FileExistsError):  # the condition holds at the last chunk, as on GCS
        fs.pipe_file(path, data[::-1], chunksize=1000, mode="create")
    assert fs.cat_file(path) == data and gcs.fake.uploads == {}


def test_the_remote_cache_publishes_and_fetches_through_gcs_without_credentials(gcs, tmp_path):  # noqa: F811
    here, there = Cache(tmp_path / "here"), Cache(tmp_path / "there")
    key, entry = entry_in(here, "shot")
    remote = Remote(gcs.url("cache"))
    assert remote.fs.credentials.method == "anon", "an emulator needs no credentials: none are looked up"
    remote.publish(key, entry, here)
    assert sorted(gcs.objects("cache/")) == sorted(
        [f"cache/actions/{key}.json"] + [f"cache/objects/{sha[:2]}/{sha}" for sha in entry["outputs"].values()])
    assert Remote(gcs.url("cache")).fetch(key, there) == entry
    for sha in entry["outputs"].values():
        assert there.object_path(sha).read_bytes() == here.object_path(sha).read_bytes()
    assert Remote(gcs.url("cache")).pull(Cache(tmp_path / "third"), [key]).actions == 1


def test_a_create_whose_answer_was_lost_still_holds_the_lease(gcs, tmp_path):  # noqa: F811
    """GCS made the lease but the answer never came: gcsfs retries, hears 412, and the lease reads back as ours."""
    gcs.fake.faults.add("upload", Fault.lose_answer())
    warned: list[str] = []
    remote = Remote(gcs.url("cache"), warn=warned.append)
    key = "ab" * 32
    with remote.lease(key, Cache(tmp_path / "a")) as fetched:
        assert fetched is None, "this machine holds the lease"
        assert _Store(remote).generations(key) == [0]
    assert gcs.fake.count("upload") == 2, "the create, then gcsfs's retry of it"
    assert _Store(remote).generations(key) == [] and warned == []


def test_a_gcs_remote_that_fails_stops_leasing_with_one_warning(gcs, tmp_path):  # noqa: F811
    gcs.fake.fail("list", 403, message="storage.objects.list denied")
    warned: list[str] = []
    remote = Remote(gcs.url("cache"), warn=warned.append)
    for _ in range(2):
        with remote.lease("cd" * 32, Cache(tmp_path / "a")) as fetched:
            assert fetched is None
    assert len(warned) == 1 and "cannot take leases" in warned[0] and "Forbidden" in warned[0]


def test_a_gcs_remote_times_out_a_silent_server_instead_of_waiting_for_ever(gcs):  # noqa: F811
    """gcsfs's own default is no timeout at all; a silent read costs 10 s per try, then the remote is down."""
    timeout = Remote(gcs.url("cache")).fs.requests_timeout
    assert (timeout.sock_connect, timeout.sock_read) == (3, 10)
    timeout = Remote(gcs.url("cache"), storage_options={"requests_timeout": 60}).fs.requests_timeout
    assert timeout == 60, "the caller's storage_options win"


def test_a_busy_gcs_is_retried_by_gcsfs_and_the_lease_still_taken_once(gcs, tmp_path):  # noqa: F811
    gcs.fake.fail("upload", 503)
    warned: list[str] = []
    remote = Remote(gcs.url("cache"), warn=warned.append)
    with remote.lease("ef" * 32, Cache(tmp_path / "a")) as fetched:
        assert fetched is None and _Store(remote).generations("ef" * 32) == [0]
    assert gcs.fake.count("upload") == 2 and warned == []
