"""The review room over HTTP on loopback: its state, media with Range, path safety, picks, the watcher."""

from __future__ import annotations

import http.client
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storyboard.errors import StoryboardError
from storyboard.media import probe
from storyboard.serve import Room, make_server
from tests.test_cli import run_main

BOARD = """\
# The review room's test board: comments must survive every pick.
[film]
title = "The Lighthouse Keeper"
output = "build/film.mp4"
audio = false
seed = 3

[[shot]]
id = "arrival"
prompt = "A lighthouse on a cliff at dusk."   # the opening
duration = 4
takes = 2        # two candidates to choose from

[[shot]]
id = "climb"
continues = "arrival"     # starts on arrival's last frame
prompt = "The keeper climbs the spiral stairs."
duration = 4

[[shot]]
id = "dawn"
prompt = "The same cliff at dawn, calm sea."
duration = 4
"""

WAIT = 90.0


def shared_cache(factory: pytest.TempPathFactory) -> Path:
    """One cache for every review-room test module: the same board's clips render once a session."""
    return factory.getbasetemp() / "review-cache"


def write_board(folder: Path, text: str = BOARD) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "storyboard.toml"
    path.write_text(text)
    return path


class Running:
    """A review room served on a free loopback port in this process."""

    def __init__(self, board: Path, cache: Path) -> None:
        self.board = board
        self.room = Room(board, cache_dir=cache, jobs=2)
        self.server = make_server(self.room, "127.0.0.1", 0)
        self.url = self.server.url.rstrip("/")
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        self.room.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.room.stop()

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/api/state", timeout=10).json()

    def wait(self, test: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT) -> dict[str, Any]:
        """The first state that passes `test`, following the version as the page does."""
        deadline = time.monotonic() + timeout
        state = self.state()
        while not test(state):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; last state: {state.get('status')}")
            self.room.wait_version(state["version"], min(left, 2.0))
            state = self.state()
        return state


def raw_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET with the path exactly as given (httpx would normalise `..` away before sending it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def built(state: dict[str, Any]) -> bool:
    return bool(state.get("film")) and not state["status"]["building"] and \
        all(c["built"] for s in state.get("shots", ()) for c in s["candidates"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("room") / "board"
    running = Running(write_board(folder), shared_cache(tmp_path_factory))
    try:
        running.wait(built, "the first build")
        yield running
    finally:
        running.close()


def shot(state: dict[str, Any], shot_id: str) -> dict[str, Any]:
    return next(s for s in state["shots"] if s["id"] == shot_id)


def test_state_lists_every_shot_and_candidate_in_film_order(served: Running) -> None:
    state = served.state()
    assert [s["id"] for s in state["shots"]] == ["arrival", "climb", "dawn"]
    arrival = shot(state, "arrival")
    assert [c["number"] for c in arrival["candidates"]] == [1, 2]
    assert arrival["candidates"][0]["sha"] != arrival["candidates"][1]["sha"]
    for s in state["shots"]:
        for c in s["candidates"]:
            clip = served.room.roots["cache"] / "objects" / c["sha"][:2] / c["sha"]
            assert probe(clip).duration == pytest.approx(4.0, abs=0.1)
            assert c["cost_text"] == "$0.00" and c["provider"] == "animatic"
    climb = shot(state, "climb")["candidates"][0]
    assert climb["continuity"] is not None and 0.9 < climb["continuity"] <= 1.0  # it starts on arrival's last frame
    picked, other = sorted(arrival["candidates"], key=lambda c: not c["picked"])
    assert picked["continuity_next"] > 0.98  # climb starts on the picked candidate's last frame (through the encoder)
    assert other["continuity_next"] < picked["continuity_next"] - 0.02
    assert shot(state, "dawn")["candidates"][0]["continuity_next"] is None  # the last clip of the film
    assert state["film"]["duration"] == pytest.approx(12.0, abs=0.1)
    page = httpx.get(served.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for name, kind in (("review.js", "text/javascript"), ("review.css", "text/css")):
        asset = httpx.get(f"{served.url}/static/{name}", timeout=10)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: everything from the package


def test_media_is_served_with_ranges(served: Running) -> None:
    film = served.state()["film"]
    data = (served.room.roots["cache"] / "objects" / film["sha"][:2] / film["sha"]).read_bytes()
    whole = httpx.get(served.url + film["url"], timeout=10)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "video/mp4" and whole.headers["accept-ranges"] == "bytes"
    part = httpx.get(served.url + film["url"], headers={"Range": "bytes=100-1099"}, timeout=10)
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    tail = httpx.get(served.url + film["url"], headers={"Range": "bytes=-500"}, timeout=10)
    assert tail.status_code == 206 and tail.content == data[-500:]
    beyond = httpx.get(served.url + film["url"], headers={"Range": f"bytes={len(data)}-"}, timeout=10)
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    head = httpx.head(served.url + film["url"], timeout=10)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data)) and not head.content
    placed = httpx.get(f"{served.url}/build/film.mp4", timeout=10)
    assert placed.status_code == 200 and placed.content == data


def test_only_the_board_folder_the_build_folder_and_shown_media_are_served(served: Running, tmp_path: Path) -> None:
    folder = served.board.parent
    (folder / "notes.txt").write_text("inside")
    (folder / ".env").write_text("GEMINI_API_KEY=SECRET-1")
    (folder / "keys.json").write_text('{"key": "SECRET-2"}')
    outside = tmp_path / "outside.txt"
    outside.write_text("SECRET-3")
    (folder / "leak.txt").symlink_to(outside)
    (folder / "up").symlink_to(tmp_path, target_is_directory=True)
    assert raw_get(served.port, "/files/notes.txt") == (200, b"inside")  # the control: a file inside is served
    refused = [
        "/files/../storyboard.toml", "/files/../../../../etc/passwd", "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/files/..%2f..%2fetc%2fpasswd", "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd", "/files/%2fetc/passwd", "/files/\\..\\etc\\passwd", "/build/../storyboard.toml",
        "/build/%2e%2e/%2e%2e/outside.txt", "/files/.env", "/files/%2eenv", "/files/keys.json",
        "/files/leak.txt", "/files/up/outside.txt", "/files/.storyboard/hashes.json", "/files/notes.txt%00.mp4",
        "/files/%ff%fe.txt", "/files/", "/static/../storyboard.toml", "/static/%2e%2e/pick.py",
        "/media/" + "0" * 64, "/media/../../etc/passwd", "/media/%2e%2e%2fstoryboard.toml",
        f"/media/{tmp_path}/outside.txt", "/etc/passwd", "//etc/passwd",
    ]
    for path in refused:
        status, body = raw_get(served.port, path)
        assert status == 404, (path, status)
        assert not any(secret in body for secret in (b"SECRET", b"root:", b"[[shot]]")), path
    absolute = httpx.get(f"{served.url}/files/{outside}", timeout=10)
    assert absolute.status_code == 404


def test_requests_must_name_this_server_and_picks_come_from_its_page(served: Running) -> None:
    assert raw_get(served.port, "/api/state", {"Host": "evil.example"})[0] == 421
    assert raw_get(served.port, "/api/state", {"Host": f"localhost:{served.port}"})[0] == 200
    url = f"{served.url}/api/pick"
    before = served.board.read_bytes()
    plain = httpx.post(url, content=b'{"shot": "arrival", "number": 2}', headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    foreign = httpx.post(url, json={"shot": "arrival", "number": 2}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    for body in ({"shot": "arrival"}, {"shot": "arrival", "number": "2"}, {"shot": 1, "number": 2}):
        assert httpx.post(url, json=body).status_code == 400
    unknown = httpx.post(url, json={"shot": "arival", "number": 2})
    assert unknown.status_code == 422 and "did you mean 'arrival'" in unknown.json()["error"]
    too_high = httpx.post(url, json={"shot": "arrival", "number": 3})
    assert too_high.status_code == 422 and "from 1 to 2" in too_high.json()["error"]
    assert served.board.read_bytes() == before


def test_a_pick_writes_the_toml_and_the_film_follows(served: Running) -> None:
    state = served.state()
    film, climb = state["film"]["sha"], shot(state, "climb")["candidates"][0]["sha"]
    answer = httpx.post(f"{served.url}/api/pick", json={"shot": "arrival", "number": 2},
                        headers={"Origin": served.url}, timeout=30)
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert [r["shot"] for r in plan["runs"]] == ["climb"] and plan["film"] == "re-stitches"
    assert served.board.read_text() == BOARD.replace("takes = 2        # two candidates to choose from\n",
                                                     "takes = 2        # two candidates to choose from\npick = 2\n")
    state = served.wait(lambda s: s.get("film") and s["film"]["sha"] != film and built(s), "the film of pick 2")
    arrival = shot(state, "arrival")
    assert arrival["pick"] == 2 and [c["picked"] for c in arrival["candidates"]] == [False, True]
    assert shot(state, "climb")["candidates"][0]["sha"] != climb  # it starts on the new candidate's last frame
    assert state["follow_up"]["shot"] == "arrival" and state["status"]["error"] is None


def test_switching_back_is_a_cache_hit(served: Running, capsys, monkeypatch) -> None:
    served.wait(lambda s: shot(s, "arrival")["pick"] == 2 and built(s), "pick 2 built")
    code, out, err = run_main(["pick", str(served.board), "arrival", "1", "--cache-dir",
                               str(served.room.roots["cache"])], capsys, monkeypatch)
    assert code == 0, err
    assert "pick = 1 (was 2)" in out
    assert "no shot to generate" in out and "film: cached" in out
    state = served.wait(lambda s: shot(s, "arrival")["pick"] == 1 and built(s), "the watcher's rebuild of pick 1")
    assert tomllib.loads(served.board.read_text())["shot"][0]["pick"] == 1
    assert "# two candidates to choose from" in served.board.read_text()
    assert state["status"]["error"] is None


def test_the_watcher_rebuilds_when_the_board_changes(served: Running) -> None:
    state = served.wait(built, "a settled room")
    film, version = state["film"]["sha"], state["version"]
    served.board.write_text(served.board.read_text().replace("calm sea.", "calm sea, gulls overhead."))
    state = served.wait(lambda s: s.get("film") and s["film"]["sha"] != film and built(s), "a new film")
    assert state["version"] > version
    assert shot(state, "dawn")["prompt"] == "The same cliff at dawn, calm sea, gulls overhead."
    assert httpx.get(served.url + state["film"]["url"], timeout=10).status_code == 200


def test_errors_are_shown_not_crashes(served: Running) -> None:
    good = served.board.read_text()
    broken = good.replace("duration = 4", "duration = 5", 1)
    assert broken != good
    served.board.write_text(broken)
    state = served.wait(lambda s: s["status"]["error"], "the error on the page")
    assert "arrival" in state["status"]["error"] and "duration" in state["status"]["error"]
    assert state["shots"]  # the last good state stays on the page
    served.board.write_text(good)
    served.wait(lambda s: s["status"]["error"] is None and built(s), "the error to clear")


def test_paid_rebuilds_need_consent(tmp_path: Path, capsys, monkeypatch) -> None:
    board = write_board(tmp_path / "paid")
    with pytest.raises(StoryboardError, match="--budget"):
        Room(board, provider="gemini").require_consent()
    Room(board, provider="gemini", budget=0).require_consent()
    Room(board, provider="gemini", yes=True).require_consent()
    Room(board).require_consent()  # the animatic is free
    with pytest.raises(StoryboardError, match="did you mean 'animatic'"):
        Room(board, provider="animatc", yes=True).require_consent()
    code, out, err = run_main(["serve", str(board), "--provider", "gemini", "--port", "0"], capsys, monkeypatch)
    assert code == 2 and "are paid" in err and "review room:" not in out


def test_a_build_that_would_pay_stops_before_spending(tmp_path: Path, tmp_path_factory) -> None:
    """--budget 0 with a paid provider: the room serves, its build refuses and says so on the page."""
    board = write_board(tmp_path / "budget", BOARD.replace("audio = false", "audio = true"))
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("AZERION_API_KEY", "test-key-never-sent")
    room = Room(board, cache_dir=shared_cache(tmp_path_factory), provider="azerion", budget=0)
    try:
        room.start(watch=False)
        deadline = time.monotonic() + WAIT
        while not room.snapshot()["status"]["error"] and time.monotonic() < deadline:
            room.wait_version(room.version, 2.0)
        error = room.snapshot()["status"]["error"]
        assert error and "--budget" in error and "nothing was run" in error and "--yes" in error
        assert room.spent == 0 and room.builds == 0
    finally:
        room.stop()
        monkeypatch.undo()


def test_the_command_serves_until_interrupted(tmp_path: Path, tmp_path_factory) -> None:
    """`storyboard serve --port 0` in its own process: it announces its URL, serves the page, stops on Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys

    board = write_board(tmp_path / "cli")
    env = {**os.environ, "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "storyboard", "serve", str(board), "--port", "0",
                                "--cache-dir", str(shared_cache(tmp_path_factory))],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("review room: http://127.0.0.1:"), line
        url = line.split()[2].rstrip("/")
        deadline = time.monotonic() + WAIT
        state = httpx.get(f"{url}/api/state", timeout=10).json()
        while not built(state) and time.monotonic() < deadline:
            state = httpx.get(f"{url}/api/version?after={state['version']}", timeout=30).json()
            state = httpx.get(f"{url}/api/state", timeout=10).json()
        assert built(state) and [s["id"] for s in state["shots"]] == ["arrival", "climb", "dawn"]
        assert (board.parent / "build" / "film.mp4").is_file()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_what_the_watcher_rebuilds_for_and_what_it_only_rereads(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "assets-board"
    (folder / "assets").mkdir(parents=True)
    Image.new("RGB", (64, 36), (200, 40, 40)).save(folder / "assets" / "keeper.png")
    board = write_board(folder, '[assets]\nkeeper = "assets/keeper.png"\n\n[[shot]]\nid = "dawn"\n'
                                'prompt = "The keeper at dawn."\nduration = 8\nreferences = ["keeper"]\n')
    room = Room(board, cache_dir=tmp_path / "cache")
    cache = room.roots["cache"]
    assert room.classify(board) == "build"
    assert room.classify(folder / "assets" / "keeper.png") == "build"
    assert room.classify(folder / "storyboard.lock") == "refresh"
    assert room.classify(folder / "storyboard.lock.log") == "refresh"
    assert room.classify(cache / "actions" / ("a" * 64 + ".json")) == "refresh"
    for ignored in (cache / "objects" / "ab" / ("ab" * 32), cache / "tmp" / "x.mp4", folder / "build" / "film.mp4",
                    folder / "notes.txt", folder / "assets" / "unused.png"):
        assert room.classify(ignored) is None, ignored
