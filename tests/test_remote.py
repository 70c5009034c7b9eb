"""The remote cache: two machines' local caches sharing one S3 bucket (moto on loopback) or folder."""

from __future__ import annotations

import errno
import os
import random
import shutil
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import storyboard.build
from storyboard.cache import Cache, cache_key
from storyboard.lockfile import LockFile
from storyboard.remote import Remote, RemoteError, lock_keys, remote_from
from tests.fakes.s3_server import S3Bucket, s3  # noqa: F401 - the loopback S3 server's fixture

SIZES = {"clip": 300_000, "first": 3_000, "last": 3_100}


class Bucket:
    """A remote cache at s3://<bucket>/cache on the loopback server; keys relative to the prefix."""

    def __init__(self, bucket: S3Bucket) -> None:
        self.fs, self.root = bucket.fs, f"{bucket.bucket}/cache"
        self.url, self.storage_options = f"s3://{self.root}", {"endpoint_url": bucket.endpoint}

    def keys(self) -> list[str]:
        self.fs.invalidate_cache()
        return sorted(path[len(self.root) + 1:] for path in self.fs.find(self.root))

    def get(self, key: str) -> bytes:
        return self.fs.cat_file(f"{self.root}/{key}")

    def put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{key}", data)

    def delete(self, key: str) -> None:
        self.fs.rm_file(f"{self.root}/{key}")


class Folder:
    """A folder remote with the same helpers."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url, self.storage_options = root, url, None

    def keys(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).write_bytes(data)

    def delete(self, key: str) -> None:
        (self.root / key).unlink()


@pytest.fixture
def s3_bucket(s3: S3Bucket) -> Bucket:  # noqa: F811 - uses the imported fixture
    """A fresh bucket; the AWS_* variables (endpoint included) point at the loopback server."""
    return Bucket(s3)


@pytest.fixture(params=["s3", "file-url", "path"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Bucket | Folder:
    if request.param == "s3":
        return request.getfixturevalue("s3_bucket")
    root = tmp_path / "remote"
    root.mkdir()
    return Folder(root, root.as_uri() if request.param == "file-url" else str(root))


@pytest.fixture
def warnings() -> list[str]:
    return []


@pytest.fixture
def machine_a(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "machine-a" / ".storyboard")


@pytest.fixture
def machine_b(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "machine-b" / ".storyboard")


def remote_for(store: Bucket | Folder, warnings: list[str], **kwargs) -> Remote:
    return Remote(store.url, warn=warnings.append, storage_options=store.storage_options, **kwargs)


def render(cache: Cache, name: str) -> tuple[str, dict]:
    """What the executor does after a render: adopt clip and frames, then write the action entry."""
    outputs = {}
    for output, size in SIZES.items():
        tmp = cache.tmp_path(".mp4" if output == "clip" else ".png")
        tmp.write_bytes(random.Random(f"{name}/{output}").randbytes(size))
        outputs[output] = cache.adopt(tmp)
    key = cache_key({"provider": "fake", "prompt": name})
    entry = {"key": key, "outputs": outputs, "provider": "fake", "model": "fake-1", "cost": 4.0, "unit": "USD",
             "meta": {"width": 64, "height": 36, "fps": 24, "frames": 96, "duration": 4.0, "has_audio": True}}
    cache.put_action(key, entry)
    return key, entry


def stored(cache: Cache) -> list[str]:
    return sorted(p.relative_to(cache.root).as_posix() for part in ("objects", "actions", "tmp")
                  if (cache.root / part).is_dir() for p in (cache.root / part).rglob("*") if p.is_file())


def layout(key: str, entry: dict) -> list[str]:
    return sorted([f"actions/{key}.json"] + [f"objects/{sha[:2]}/{sha}" for sha in entry["outputs"].values()])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_shot_published_by_one_machine_is_fetched_byte_for_byte_by_another(store, machine_a, machine_b,
                                                                             warnings):
    key, entry = render(machine_a, "wakes up")
    remote_for(store, warnings).publish(key, entry, machine_a)
    assert store.keys() == layout(key, entry)

    assert remote_for(store, warnings).fetch(key, machine_b) == entry
    assert machine_b.get_action(key) == entry
    for sha in entry["outputs"].values():
        assert machine_b.object_path(sha).read_bytes() == machine_a.object_path(sha).read_bytes()
    assert stored(machine_b) == stored(machine_a)
    assert warnings == []


def test_lookup_reads_the_entry_only(s3_bucket, machine_a, machine_b, warnings):
    key, entry = render(machine_a, "wakes up")
    remote = remote_for(s3_bucket, warnings)
    assert remote.lookup(key) is None
    remote.publish(key, entry, machine_a)
    assert remote.lookup(key) == entry
    assert stored(machine_b) == []
    assert warnings == []


def test_the_endpoint_can_come_from_storage_options_alone(s3_bucket, machine_a, monkeypatch, warnings):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    key, entry = render(machine_a, "wakes up")
    remote_for(s3_bucket, warnings).publish(key, entry, machine_a)
    assert s3_bucket.keys() == layout(key, entry)


def test_a_truncated_remote_object_is_refused_and_never_enters_the_cache(store, machine_a, machine_b, warnings):
    key, entry = render(machine_a, "wakes up")
    remote_for(store, warnings).publish(key, entry, machine_a)
    clip = entry["outputs"]["clip"]
    store.put(f"objects/{clip[:2]}/{clip}", machine_a.object_path(clip).read_bytes()[:100_000])

    assert remote_for(store, warnings).fetch(key, machine_b) is None
    assert warnings == [f"remote object {clip} is corrupt; ignoring it"]
    assert stored(machine_b) == []


def test_publishing_again_heals_a_corrupt_object_of_the_right_size(s3_bucket, machine_a, machine_b, warnings):
    key, entry = render(machine_a, "wakes up")
    remote = remote_for(s3_bucket, warnings)
    remote.publish(key, entry, machine_a)
    clip = entry["outputs"]["clip"]
    good = machine_a.object_path(clip).read_bytes()
    s3_bucket.put(f"objects/{clip[:2]}/{clip}", bytes(len(good)))

    assert remote.fetch(key, machine_b) is None
    remote.publish(key, entry, machine_a)
    assert s3_bucket.get(f"objects/{clip[:2]}/{clip}") == good
    assert remote.fetch(key, machine_b) == entry
    assert warnings == [f"remote object {clip} is corrupt; ignoring it"]


def test_an_entry_whose_object_is_gone_is_a_miss(store, machine_a, machine_b, warnings):
    key, entry = render(machine_a, "wakes up")
    remote_for(store, warnings).publish(key, entry, machine_a)
    last = entry["outputs"]["last"]
    store.delete(f"objects/{last[:2]}/{last}")

    assert remote_for(store, warnings).fetch(key, machine_b) is None
    assert warnings == [f"remote object {last} is missing; ignoring the entry that names it"]
    assert stored(machine_b) == []


def test_an_entry_naming_paths_instead_of_hashes_is_ignored(s3_bucket, machine_b, warnings):
    key = cache_key({"prompt": "evil"})
    s3_bucket.put(f"actions/{key}.json", b'{"outputs": {"clip": "../../../etc/passwd"}}')
    assert remote_for(s3_bucket, warnings).fetch(key, machine_b) is None
    assert warnings == [f"remote action {key} is not a valid entry; ignoring it"]
    assert stored(machine_b) == []


def test_objects_go_up_before_the_entry_and_a_failed_upload_leaves_no_entry(s3_bucket, machine_a, monkeypatch,
                                                                            warnings):
    remote = remote_for(s3_bucket, warnings)
    writes: list[str] = []
    for method, target in (("put_file", 1), ("pipe_file", 0)):
        real = getattr(remote.fs, method)
        monkeypatch.setattr(remote.fs, method,
                            lambda *a, real=real, target=target, **k: writes.append(a[target]) or real(*a, **k))
    key, entry = render(machine_a, "wakes up")
    remote.publish(key, entry, machine_a)
    assert ["/objects/" in w for w in writes] == [True, True, True, False]
    assert writes[-1].endswith(f"/actions/{key}.json")

    def refuse(*args, **kwargs):
        raise OSError(errno.EBUSY, "Service Unavailable")

    monkeypatch.setattr(remote.fs, "put_file", refuse)
    key2, entry2 = render(machine_a, "runs")
    remote.publish(key2, entry2, machine_a)
    remote.publish(key2, entry2, machine_a)
    assert s3_bucket.keys() == layout(key, entry)
    assert len(warnings) == 1 and warnings[0].startswith(f"cannot publish to the remote cache {s3_bucket.url}")
    assert remote.lookup(key) == entry, "a failed write stops publishing, not reading"


def test_objects_already_on_the_remote_are_not_sent_again(store, machine_a, warnings):
    key, entry = render(machine_a, "wakes up")
    remote = remote_for(store, warnings)
    first = remote.push(machine_a, [key])
    assert (first.actions, first.objects) == (1, 3)
    again = remote.push(machine_a, [key])
    assert (again.actions, again.objects, again.bytes, again.missing) == (0, 0, 0, [])


def test_fetch_downloads_only_what_the_cache_lacks(s3_bucket, machine_a, machine_b, warnings):
    key, entry = render(machine_a, "wakes up")
    remote = remote_for(s3_bucket, warnings)
    remote.publish(key, entry, machine_a)
    first = entry["outputs"]["first"]
    machine_b.adopt_copy(machine_a.object_path(first))
    report = remote.pull(machine_b, [key])
    assert (report.actions, report.objects, report.bytes) == (1, 2, SIZES["clip"] + SIZES["last"])
    assert machine_b.get_action(key) == entry


def test_a_dead_remote_warns_once_and_the_build_goes_on(machine_a, warnings):
    key, entry = render(machine_a, "wakes up")
    remote = Remote("s3://bucket/cache", warn=warnings.append,
                    storage_options={"endpoint_url": f"http://127.0.0.1:{closed_port()}"})
    assert remote.lookup(key) is None
    assert remote.lookup(key) is None
    assert remote.fetch(key, machine_a) is None
    remote.publish(key, entry, machine_a)
    assert len(warnings) == 1
    assert warnings[0].startswith("the remote cache s3://bucket/cache is unreachable (")
    assert warnings[0].endswith("; continuing with the local cache only")


def test_a_dead_remote_fails_the_build_when_required(machine_a, warnings):
    key, entry = render(machine_a, "wakes up")
    remote = Remote("s3://bucket/cache", warn=warnings.append, required=True,
                    storage_options={"endpoint_url": f"http://127.0.0.1:{closed_port()}"})
    with pytest.raises(RemoteError, match="is unreachable .*--require-remote") as caught:
        remote.lookup(key)
    assert caught.value.exit_code == 1
    with pytest.raises(RemoteError):
        remote.fetch(key, machine_a)
    with pytest.raises(RemoteError):
        remote.publish(key, entry, machine_a)
    assert warnings == []


@pytest.fixture
def unavailable_server():
    """An endpoint that answers 503 to everything, like an overloaded gateway."""

    class Handler(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_PUT = do_POST = _refuse

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_remote_answering_5xx_counts_as_down(s3_bucket, unavailable_server, machine_a, warnings):
    key, _ = render(machine_a, "wakes up")
    remote = Remote("s3://bucket/cache", warn=warnings.append, storage_options={"endpoint_url": unavailable_server})
    assert remote.lookup(key) is None
    assert remote.lookup(key) is None
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "Service Unavailable" in warnings[0]


def test_a_server_that_never_answers_counts_as_down(s3_bucket, machine_a, warnings):
    key, _ = render(machine_a, "wakes up")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        remote = Remote("s3://bucket/cache", warn=warnings.append,
                        storage_options={"endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}",
                                         "config_kwargs": {"read_timeout": 0.2}})
        assert remote.lookup(key) is None
        assert remote.lookup(key) is None
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "Read timeout" in warnings[0]


def test_access_denied_says_which_permissions_are_needed(s3_bucket, machine_a, monkeypatch, warnings):
    remote = remote_for(s3_bucket, warnings)

    def deny(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Access Denied")

    monkeypatch.setattr(remote.fs, "cat_file", deny)
    assert remote.lookup(render(machine_a, "wakes up")[0]) is None
    assert len(warnings) == 1 and "s3:GetObject and s3:ListBucket" in warnings[0]


def test_a_folder_remote_that_does_not_exist_is_down_not_empty(tmp_path, machine_a, warnings):
    key, entry = render(machine_a, "wakes up")
    remote = Remote(str(tmp_path / "unmounted"), warn=warnings.append)
    assert remote.lookup(key) is None
    remote.publish(key, entry, machine_a)
    assert not (tmp_path / "unmounted").exists()
    assert len(warnings) == 1 and "does not exist; create it or mount the share" in warnings[0]


def test_a_folder_remote_leaves_no_temporary_files_and_shares_its_files(tmp_path, machine_a, warnings):
    store = Folder(tmp_path / "share", (tmp_path / "share").as_uri())
    store.root.mkdir()
    key, entry = render(machine_a, "wakes up")
    remote_for(store, warnings).publish(key, entry, machine_a)
    assert store.keys() == layout(key, entry)
    umask = os.umask(0)
    os.umask(umask)
    assert {stat.S_IMODE((store.root / name).stat().st_mode) for name in store.keys()} == {0o666 & ~umask}


def test_read_only_mode_publishes_nothing_but_still_reads(s3_bucket, machine_a, machine_b, warnings):
    key, entry = render(machine_a, "wakes up")
    read_only = remote_for(s3_bucket, warnings, writable=False)
    read_only.publish(key, entry, machine_a)
    assert s3_bucket.keys() == []
    with pytest.raises(RemoteError, match="read-only"):
        read_only.push(machine_a, [key])

    remote_for(s3_bucket, warnings).publish(key, entry, machine_a)
    assert read_only.fetch(key, machine_b) == entry
    assert warnings == []


@pytest.fixture
def locked(machine_a: Cache, tmp_path: Path) -> LockFile:
    """A lock pinning two shots and the film, all rendered on machine A."""
    lock = LockFile(tmp_path / "machine-a" / "storyboard.lock")
    for shot, prompt in (("arrival", "wakes up"), ("climb", "runs")):
        key, entry = render(machine_a, prompt)
        lock.record_shot(shot, {"key": key, **{k: entry["outputs"][k] for k in ("clip", "first", "last")}})
    tmp = machine_a.tmp_path(".mp4")
    tmp.write_bytes(random.Random("film").randbytes(50_000))
    film = machine_a.adopt(tmp)
    film_key = cache_key({"node": "film", "clips": [s["clip"] for s in lock.shots.values()]})
    machine_a.put_action(film_key, {"key": film_key, "outputs": {"film": film}, "meta": {"duration": 8.0}})
    lock.record_film({"key": film_key, "sha": film, "output": "build/film.mp4"})
    return lock


def test_lock_keys_are_the_shots_then_the_film(locked):
    assert lock_keys(locked) == [locked.shots["arrival"]["key"], locked.shots["climb"]["key"], locked.film["key"]]


def test_push_and_pull_what_the_lock_pins_with_progress(store, locked, machine_a, machine_b, warnings):
    keys = lock_keys(locked) + ["0" * 64]
    remote = remote_for(store, warnings)
    seen: list[tuple[int, int, str]] = []
    pushed = remote.push(machine_a, keys, lambda done, total, what: seen.append((done, total, what)))
    assert [(done, total) for done, total, _ in seen] == [(n, 10) for n in range(1, 11)]
    assert [what.split()[0] for _, _, what in seen] == ["object"] * 3 + ["action"] + ["object"] * 3 + ["action"] \
        + ["object", "action"]
    assert (pushed.actions, pushed.objects, pushed.missing) == (3, 7, ["0" * 64])
    assert pushed.bytes > 2 * sum(SIZES.values()) + 50_000

    seen.clear()
    pulled = remote.pull(machine_b, keys, lambda done, total, what: seen.append((done, total, what)))
    assert [(done, total) for done, total, _ in seen] == [(n, 10) for n in range(1, 11)]
    assert (pulled.actions, pulled.objects, pulled.missing) == (3, 7, ["0" * 64])
    assert pulled.bytes == 2 * sum(SIZES.values()) + 50_000
    for key in lock_keys(locked):
        assert machine_b.get_action(key) == machine_a.get_action(key)
    assert stored(machine_b) == stored(machine_a)

    seen.clear()
    again = remote.pull(machine_b, keys, lambda *args: seen.append(args))
    assert (again.actions, again.objects, again.missing, seen) == (0, 0, ["0" * 64], [])
    assert warnings == []


def test_pull_skips_a_corrupt_key_and_takes_the_rest(s3_bucket, locked, machine_a, machine_b, warnings):
    remote = remote_for(s3_bucket, warnings)
    remote.push(machine_a, lock_keys(locked))
    clip = locked.shots["climb"]["clip"]
    s3_bucket.put(f"objects/{clip[:2]}/{clip}", b"not the clip")
    seen: list[tuple[int, int]] = []
    report = remote.pull(machine_b, lock_keys(locked), lambda done, total, what: seen.append((done, total)))
    assert report.missing == [locked.shots["climb"]["key"]]
    assert report.actions == 2
    assert seen[-1] == (10, 10)
    assert warnings == [f"remote object {clip} is corrupt; ignoring it"]
    assert machine_b.get_action(locked.shots["climb"]["key"]) is None
    assert not machine_b.has_object(clip)


def test_push_and_pull_fail_loudly_when_the_remote_is_down(locked, machine_a):
    remote = Remote("s3://bucket/cache", warn=pytest.fail,
                    storage_options={"endpoint_url": f"http://127.0.0.1:{closed_port()}"})
    with pytest.raises(RemoteError, match="cannot push"):
        remote.push(machine_a, lock_keys(locked))
    with pytest.raises(RemoteError, match="cannot pull"):
        remote.pull(Cache(machine_a.root.parent / "other"), lock_keys(locked))


def test_an_unknown_protocol_is_a_set_up_error():
    with pytest.raises(RemoteError, match="nope://"):
        Remote("nope://bucket/cache")


@pytest.mark.parametrize(("board", "cli", "no_remote", "env", "expected"), [
    ("s3://board", None, False, {}, "s3://board"),
    ("s3://board", None, False, {"STORYBOARD_REMOTE": "s3://env"}, "s3://env"),
    ("s3://board", "s3://cli", False, {"STORYBOARD_REMOTE": "s3://env"}, "s3://cli"),
    ("s3://board", "s3://cli", True, {"STORYBOARD_REMOTE": "s3://env"}, None),
    (None, None, False, {"STORYBOARD_REMOTE": ""}, None),
    (None, None, False, {}, None),
])
def test_remote_from_precedence(board, cli, no_remote, env, expected):
    assert remote_from(board, cli, no_remote, env=env) == expected


BOARD = """
[film]
provider = "fake"
seed = 3
resolution = "360p"  # the film's size is not the point here: a quarter of 720p's stitch

[assets]
fox = "assets/fox.png"

[[shot]]
id = "a"
first_frame = "fox"
prompt = "a red fox wakes up"
duration = 4

[[shot]]
id = "b"
continues = "a"
prompt = "a red fox runs"
duration = 4
"""


@pytest.mark.skipif(not hasattr(storyboard.build, "REMOTE_READY"),
                    reason="waiting for the lead to wire Remote into build")
def test_a_second_machine_builds_the_same_film_without_paying(s3_bucket, fake_provider, write_board, tmp_path):
    from storyboard.build import build, open_project
    from storyboard.executor import Outcome

    checkout_a = write_board(BOARD, folder="machine-a", fox=(200, 80, 20)).parent
    checkout_b = tmp_path / "machine-b"
    shutil.copytree(checkout_a, checkout_b)
    warnings: list[str] = []

    def machine(checkout: Path):
        remote = Remote(s3_bucket.url, warn=warnings.append)
        return open_project(checkout / "storyboard.toml", cache_dir=tmp_path / f"cache-{checkout.name}",
                            remote=remote)

    built_a = build(machine(checkout_a))
    assert sorted(shot for shot, _ in fake_provider.calls) == ["a", "b"]
    fake_provider.calls.clear()

    built_b = build(machine(checkout_b))
    assert fake_provider.calls == []
    assert built_b.count(Outcome.RENDERED) == 0 and not built_b.failed
    assert built_b.film.path == checkout_b / "build" / "film.mp4"
    assert built_b.film.path.read_bytes() == built_a.film.path.read_bytes()
    assert built_b.film.stitched is False, "the film itself comes from the remote"
    assert warnings == []
