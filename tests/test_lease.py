"""Leases on the remote cache: three machines missing the same keys at once pay for each key once.

The machines are `storyboard build` processes with their own checkout and local cache, sharing
one remote (S3 on the loopback moto server, GCS on the loopback fake of its JSON API, or a shared
folder), and one counting fake provider whose submissions from every process land in one file.
Every test of the protocol runs on each of the three stores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from storyboard.cache import Cache, cache_key
from storyboard.lease import _Store, describe_holder
from storyboard.remote import Remote
from tests.fakes.gcs_server import GcsBucket, gcs, gcs_server  # noqa: F401 - the loopback GCS fake's fixtures
from tests.fakes.s3_server import S3Bucket, s3  # noqa: F401 - the loopback S3 server's fixture

BOARD = """\
[film]
provider = "fake"
duration = 4
resolution = "360p"  # the film's size is not the point: 360p clips render and join faster

[[shot]]
id = "a"
prompt = "a lighthouse at dusk"

[[shot]]
id = "b"
prompt = "waves on the rocks"

[[shot]]
id = "c"
prompt = "a gull over the sea"
"""
SHOTS = ["a", "b", "c"]
DEADLINE = 240.0


@pytest.fixture(scope="session")
def counting_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for `storyboard build` subprocesses whose "fake" provider counts submissions."""
    site = tmp_path_factory.mktemp("counting-site")
    dist = site / "counting_provider-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: counting-provider\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[storyboard.providers]\nfake = tests.fakes.counting_provider:CountingProvider\n")
    root = Path(__file__).resolve().parent.parent
    path = os.pathsep.join([str(site), str(root), os.environ.get("PYTHONPATH", "")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYBOARD_", "FAKE_"))}
    return {**env, "PYTHONPATH": path}


class Meeting:
    """Where the machines meet: its URL and a way to list the leases on it."""

    def __init__(self, url: str, env: dict[str, str], leases: Callable[[], dict[str, bytes]]) -> None:
        self.url, self.env, self.leases = url, env, leases


STORES = ["s3", "gcs", "folder"]


# The three-process runs cost ~10 s each. S3 stays in the default suite; on GCS and a shared folder the
# same lease protocol (create-if-absent, wait and download, release on failure, take over a dead lease)
# is covered by the in-process tests below, each run on all three stores: these two run with `-m slow`.
MEETINGS = ["s3", pytest.param("gcs", marks=pytest.mark.slow), pytest.param("folder", marks=pytest.mark.slow)]


@pytest.fixture(params=MEETINGS)
def meeting(request: pytest.FixtureRequest, tmp_path: Path) -> Meeting:
    if request.param == "gcs":
        bucket: GcsBucket = request.getfixturevalue("gcs")

        def gcs_leases() -> dict[str, bytes]:
            return {name.split("/leases/", 1)[1]: data for name, data in bucket.objects("cache/leases/").items()}

        return Meeting(bucket.url("cache"), bucket.fake.env(), gcs_leases)
    if request.param == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3")
        from tests.fakes.s3_server import s3_env

        def s3_leases() -> dict[str, bytes]:
            bucket.fs.invalidate_cache()
            found = bucket.fs.find(f"{bucket.bucket}/cache/leases")
            return {p.split("/leases/", 1)[1]: bucket.fs.cat_file(p) for p in found if "/leases/" in p}

        return Meeting(bucket.upload_url("cache"), s3_env(bucket.endpoint), s3_leases)
    root = tmp_path / "share"
    root.mkdir()

    def folder_leases() -> dict[str, bytes]:
        return {p.relative_to(root / "leases").as_posix(): p.read_bytes()
                for p in (root / "leases").rglob("*") if p.is_file() and not p.name.startswith(".")}

    return Meeting(str(root), {}, folder_leases)


class Machine:
    """One `storyboard build` of its own checkout into its own cache."""

    def __init__(self, tmp_path: Path, name: str, env: dict[str, str], remote: str) -> None:
        self.checkout = tmp_path / name
        self.checkout.mkdir()
        (self.checkout / "storyboard.toml").write_text(BOARD)
        self.stdout = self.checkout / "stdout.jsonl"
        self.stderr = self.checkout / "stderr.txt"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "storyboard", "build", str(self.checkout / "storyboard.toml"), "--json",
                 "--yes", "--cache-dir", str(tmp_path / f"cache-{name}"), "--remote", remote],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def finish(self) -> int:
        return self.proc.wait(timeout=DEADLINE)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE)

    def film(self) -> bytes:
        return (self.checkout / "build" / "film.mp4").read_bytes()

    def events(self, state: str) -> list[dict]:
        lines = [json.loads(line) for line in self.stdout.read_text().splitlines() if line.startswith("{")]
        return [e for e in lines if e.get("state") == state]


@pytest.fixture
def machines(tmp_path: Path):
    """machines(env, remote) -> three builds started at once; any still running at the end are killed."""
    started: list[Machine] = []

    def start(env: dict[str, str], remote: str, count: int = 3) -> list[Machine]:
        started.extend(Machine(tmp_path, f"machine-{i}", env, remote) for i in range(count))
        return started

    yield start
    for machine in started:
        if machine.proc.poll() is None:
            machine.kill()


def submissions(log: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in log.read_text().splitlines())


def test_three_machines_pay_for_each_key_once_and_build_the_same_film(meeting, counting_env, machines, tmp_path):
    log = tmp_path / "submissions"
    # A 10 s lease: waiters poll every second (not every 2 s), yet a holder stalled by a loaded
    # machine for less than 10 s keeps its lease.
    env = {**counting_env, **meeting.env, "FAKE_SUBMISSIONS": str(log), "FAKE_RENDER_SECONDS": "1.5",
           "STORYBOARD_LEASE_SECONDS": "10"}
    crew = machines(env, meeting.url)
    codes = [m.finish() for m in crew]
    assert codes == [0, 0, 0], [m.stderr.read_text() for m in crew]
    assert submissions(log) == Counter({shot: 1 for shot in SHOTS})
    films = [m.film() for m in crew]
    assert films[0] and films[1] == films[0] and films[2] == films[0]
    waited = [e for m in crew for e in m.events("waiting")]
    assert waited, "the machines started together: some must have waited for another's lease"
    assert all("(remote lease) since" in e["holder"] and " on " in e["holder"] for e in waited)
    assert meeting.leases() == {}, "every lease is released once its entry is published"
    assert not any("warning" in m.stderr.read_text() for m in crew), [m.stderr.read_text() for m in crew]


def test_a_killed_lease_holder_is_taken_over_after_the_lease_expires(meeting, counting_env, machines, tmp_path):
    log = tmp_path / "submissions"
    env = {**counting_env, **meeting.env, "FAKE_SUBMISSIONS": str(log), "FAKE_RENDER_SECONDS": "2",
           "STORYBOARD_LEASE_SECONDS": "3"}
    crew = machines(env, meeting.url)
    deadline = time.monotonic() + DEADLINE
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    first_pid = int(log.read_text().split()[1])  # a machine is rendering: it holds that key's lease
    victim = next(m for m in crew if m.proc.pid == first_pid)
    victim.kill()
    held = [json.loads(body)["pid"] for body in meeting.leases().values()]
    assert first_pid in held, "the killed machine left its lease behind"
    survivors = [m for m in crew if m is not victim]
    codes = [m.finish() for m in survivors]
    assert codes == [0, 0], [m.stderr.read_text() for m in survivors]
    paid = [line.split() for line in log.read_text().splitlines()]
    by_victim = Counter(shot for shot, pid in paid if int(pid) == victim.proc.pid)
    by_survivors = Counter(shot for shot, pid in paid if int(pid) != victim.proc.pid)
    assert by_victim and max(by_victim.values()) == 1, paid
    assert by_survivors == Counter({shot: 1 for shot in SHOTS}), "the survivors pay once for each key"
    assert survivors[0].film() == survivors[1].film()
    stderr = "".join(m.stderr.read_text() for m in survivors)
    assert "was silent for 3 s; this machine took it over" in stderr
    assert meeting.leases() == {}


# ---- in one process: the protocol's pieces -------------------------------------------------------


def entry_in(cache: Cache, name: str) -> tuple[str, dict]:
    outputs = {}
    for output in ("clip", "first", "last"):
        tmp = cache.tmp_path()
        tmp.write_bytes(f"{name}/{output}".encode())
        outputs[output] = cache.adopt(tmp)
    key = cache_key({"prompt": name})
    entry = {"key": key, "outputs": outputs}
    cache.put_action(key, entry)
    return key, entry


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "gcs":
        return request.getfixturevalue("gcs").url("cache")
    if request.param == "s3":
        return request.getfixturevalue("s3").upload_url("cache")
    (tmp_path / "share").mkdir()
    return str(tmp_path / "share")


def test_of_many_racing_creates_exactly_one_wins(url):
    remotes = [Remote(url) for _ in range(2)]  # two clients, four racers each: 8 S3 clients cost 5 s to make
    path = _Store(remotes[0]).path("ab" * 32, 0)
    start = threading.Barrier(8)
    won: list[bool] = []

    def race(remote: Remote, n: int) -> None:
        start.wait()
        won.append(_Store(remote).create(path, f"racer {n}".encode()))

    threads = [threading.Thread(target=race, args=(remotes[n % 2], n)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 7 + [True]


def test_a_waiter_downloads_what_the_holder_publishes_and_names_the_holder(url, tmp_path, monkeypatch):
    monkeypatch.setenv("STORYBOARD_LEASE_SECONDS", "5")  # the waiter polls every 0.5 s, not 2 s
    holder_cache, waiter_cache = Cache(tmp_path / "a"), Cache(tmp_path / "b")
    key, entry = entry_in(holder_cache, "shot")
    holder, waiter = Remote(url), Remote(url)
    held = threading.Event()
    heard: list[str] = []
    got: list[dict | None] = []

    def wait_for_it() -> None:
        held.wait()
        with waiter.lease(key, waiter_cache, heard.append) as fetched:
            got.append(fetched)

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    with holder.lease(key, holder_cache) as fetched:
        assert fetched is None, "the first machine holds the lease"
        held.set()
        time.sleep(0.5)
        holder.publish(key, entry, holder_cache)
    thread.join(timeout=30)
    assert got == [entry] and waiter_cache.get_action(key) == entry
    assert len(heard) == 1 and heard[0].startswith(f"pid {os.getpid()} on ") and "since" in heard[0]
    assert _Store(holder).generations(key) == []


def test_a_failed_render_releases_the_lease_at_once(url, tmp_path):
    key = "cd" * 32
    remote = Remote(url)
    with pytest.raises(RuntimeError), remote.lease(key, Cache(tmp_path / "a")):
        assert _Store(remote).generations(key) == [0]
        raise RuntimeError("the provider refused")
    assert _Store(remote).generations(key) == []


def test_two_waiters_take_over_a_dead_lease_once(url, tmp_path, monkeypatch):
    monkeypatch.setenv("STORYBOARD_LEASE_SECONDS", "1")
    key = "ef" * 32
    dead = Remote(url)
    assert _Store(dead).create(_Store(dead).path(key, 0), b'{"host": "gone", "pid": 1, "since": "10:00:00"}')
    outcomes: list[dict | None] = []
    warned: list[str] = []

    def machine(name: str) -> None:
        cache = Cache(tmp_path / name)
        remote = Remote(url, warn=warned.append)
        with remote.lease(key, cache) as fetched:
            outcomes.append(fetched)
            if fetched is None:  # the taker: render and publish while the other waits
                time.sleep(1.5)
                remote.publish(key, entry_in(cache, "shot")[1] | {"key": key}, cache)

    threads = [threading.Thread(target=machine, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes, key=bool)[0] is None and outcomes.count(None) == 1
    assert len(warned) == 1 and "(pid 1 on gone (remote lease) since 10:00:00) was silent" in warned[0]
    assert _Store(dead).generations(key) == []


def test_a_store_without_conditional_writes_says_so_once_and_builds_as_before(tmp_path):
    warned: list[str] = []
    remote = Remote(f"memory://lease-{os.getpid()}", warn=warned.append)
    for _ in range(2):
        with remote.lease("12" * 32, Cache(tmp_path / "a")) as fetched:
            assert fetched is None
    assert len(warned) == 1 and "cannot create a file only if it is absent" in warned[0]


def test_a_read_only_remote_takes_no_lease(url, tmp_path):
    remote = Remote(url, writable=False)
    with remote.lease("34" * 32, Cache(tmp_path / "a")) as fetched:
        assert fetched is None
        assert _Store(Remote(url)).generations("34" * 32) == []


def test_the_holder_is_described_without_trusting_the_lease():
    assert describe_holder(b'{"host": "ci-7", "pid": 42, "since": "12:01:02"}') == \
        "pid 42 on ci-7 (remote lease) since 12:01:02"
    assert describe_holder(b"") == describe_holder(b"{not json") == "another machine (remote lease)"


def test_a_store_that_refuses_conditional_creates_stops_leasing_with_one_warning(s3, tmp_path, monkeypatch):  # noqa: F811
    warned: list[str] = []
    remote = Remote(s3.upload_url("cache"), warn=warned.append)

    def refuse(*args, **kwargs):
        raise OSError("NotImplemented: A header you provided implies functionality that is not implemented")

    monkeypatch.setattr(remote.fs, "pipe_file", refuse)
    for _ in range(2):
        with remote.lease("56" * 32, Cache(tmp_path / "a")) as fetched:
            assert fetched is None
    assert len(warned) == 1 and "cannot take leases" in warned[0] and "NotImplemented" in warned[0]
