"""`storyboard build` against the fake Gemini API on loopback: real processes, real requests, faults."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import av
import pytest
from PIL import Image

from tests._cli import clean_env
from tests._cli import storyboard as run_storyboard
from tests.fakes.google_server import RAI_REASON, FakeGoogle

storyboard = partial(run_storyboard, yes=True, timeout=180)
"""`storyboard ARGS`, past the paid-work confirmation: the fake charges nothing."""

KEY = "test-key"

BOARD = """
[film]
output = "out/film.mp4"
provider = "gemini"
duration = 4
resolution = "720p"
seed = 11

[providers.gemini]
allow_retired = true  # the fake still serves the shut-down preview models
poll_interval = 0.01

[assets]
captain = "assets/captain.png"

[[shot]]
id = "harbour"
prompt = "a fishing boat leaves the harbour at dawn"

[[shot]]
id = "sea"
continues = "harbour"
prompt = "the boat reaches the open sea"

[[shot]]
id = "captain"
references = ["captain"]
duration = 8
prompt = "the captain at the wheel, rain on the windows"

[[shot]]
id = "storm"
extends = "captain"
duration = 8
prompt = "lightning: the captain holds the course"
"""
PROMPTS = {"harbour": "a fishing boat leaves the harbour at dawn", "sea": "the boat reaches the open sea",
           "captain": "the captain at the wheel, rain on the windows",
           "storm": "lightning: the captain holds the course"}


def gemini_env(fake: FakeGoogle, **extra: str) -> dict[str, str]:
    """The environment of a `storyboard` process talking to `fake`, and nothing else."""
    return clean_env(GEMINI_API_KEY=KEY, STORYBOARD_GEMINI_BASE_URL=fake.url, **extra)


def write_project(root: Path, text: str = BOARD) -> Path:
    (root / "assets").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 36), (180, 40, 30)).save(root / "assets" / "captain.png")
    board = root / "storyboard.toml"
    board.write_text(text)
    return board


def lock_of(board: Path) -> dict:
    return json.loads(board.with_name("storyboard.lock").read_text())


def cache_objects(cache: Path) -> dict[str, Path]:
    """Every file under objects/, by name."""
    return {p.name: p for p in (cache / "objects").rglob("*") if p.is_file()}


def assert_objects_intact(cache: Path) -> None:
    """Every object hashes to its name and sits in its fan-out folder: nothing partial is a result."""
    for name, path in cache_objects(cache).items():
        assert path.parent.name == name[:2], path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == name, f"{path} does not hash to its name"


def journals(cache: Path) -> list[Path]:
    """The journal entries a build left: in-flight operations it would resume."""
    return sorted(p for p in (cache / "journal").glob("*.json") if not p.name.startswith("."))  # not a .tmp


def film_frames(path: Path) -> tuple[int, int, int]:
    """(width, height, decoded video frames) of a film."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        size = (video.width, video.height)
        frames = sum(1 for _ in container.decode(video=0))
    return (*size, frames)


def submitted_by_prompt(fake: FakeGoogle) -> dict[str, dict]:
    bodies = fake.bodies("submit")
    return {b["instances"][0]["prompt"]: b for b in bodies if isinstance(b, dict) and b.get("instances")}


@pytest.fixture
def fake(google_fake: FakeGoogle):
    google_fake.api_key = KEY
    yield google_fake
    google_fake.release()
    google_fake.api_key = "fake-gemini-key"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, google_server: FakeGoogle):
    """The board built once against a fresh fake; what the fake saw is kept before later tests reset it."""
    google_server.reset()
    google_server.api_key = KEY
    board = write_project(tmp_path_factory.mktemp("gemini"))
    result = storyboard("build", str(board), env=gemini_env(google_server))
    seen = {"submissions": google_server.submissions, "bodies": submitted_by_prompt(google_server),
            "counts": google_server.stats()["counts"], "url": google_server.url}
    yield board, result, seen
    google_server.api_key = "fake-gemini-key"


def test_build_makes_the_film(built):
    board, result, _ = built
    assert result.returncode == 0, result.stderr
    assert "summary: 4 rendered" in result.stdout
    film = board.parent / "out" / "film.mp4"
    assert f"film: {film} (23.00 s, stitched)" in result.stdout  # harbour 4 + sea 4 + storm (8 + 7)
    assert film_frames(film) == (1280, 720, 23 * 24)
    assert_objects_intact(board.parent / ".storyboard")


def test_each_shot_is_submitted_exactly_once(built):
    _, _, seen = built
    assert seen["submissions"] == {prompt: 1 for prompt in PROMPTS.values()}
    assert seen["counts"]["submit"] == 4


def test_requests_carry_the_frame_the_references_and_the_source_handle(built):
    board, _, seen = built
    lock, bodies, cache = lock_of(board), seen["bodies"], board.parent / ".storyboard"

    sea = bodies[PROMPTS["sea"]]["instances"][0]
    last_of_harbour = (cache / "objects" / lock["shots"]["harbour"]["last"][:2] / lock["shots"]["harbour"]["last"])
    assert sea["image"]["mimeType"] == "image/png"
    assert base64.b64decode(sea["image"]["bytesBase64Encoded"]) == last_of_harbour.read_bytes()

    captain = bodies[PROMPTS["captain"]]["instances"][0]
    [reference] = captain["referenceImages"]
    assert reference["referenceType"] == "asset"
    assert base64.b64decode(reference["image"]["bytesBase64Encoded"]) == \
        (board.parent / "assets" / "captain.png").read_bytes()
    assert "image" not in captain

    storm = bodies[PROMPTS["storm"]]
    handle = lock["shots"]["captain"]["handle"]
    assert storm["instances"][0]["video"] == {"uri": handle["uri"]}
    assert handle["uri"].startswith(f"{seen['url']}/v1beta/files/")
    assert storm["parameters"] == {"sampleCount": 1, "resolution": "720p"}  # the film seed is dropped for gemini
    assert "image" not in storm["instances"][0]

    for shot in ("harbour", "sea", "captain"):
        parameters = bodies[PROMPTS[shot]]["parameters"]
        assert parameters["durationSeconds"] == (8 if shot == "captain" else 4)
        assert parameters["resolution"] == "720p" and parameters["aspectRatio"] == "16:9"


def test_a_rebuild_makes_no_request(built, fake):
    board, _, _ = built
    env = gemini_env(fake)
    again = storyboard("build", str(board), env=env)
    assert again.returncode == 0, again.stderr
    shutil.rmtree(board.parent / ".storyboard" / "stamps")  # past the no-op fast path: plan and cache only
    full = storyboard("build", str(board), env=env)
    assert full.returncode == 0, full.stderr
    assert "summary: 4 cached" in full.stdout and "(23.00 s, up to date)" in full.stdout
    assert fake.stats()["counts"] == {}


def test_the_key_is_written_nowhere(built):
    board, result, _ = built
    assert KEY not in result.stdout and KEY not in result.stderr
    written = [p for p in board.parent.rglob("*") if p.is_file()]
    assert board.with_name("storyboard.lock") in written
    assert any(p.parent.name == "actions" for p in written)
    assert not [p for p in written if KEY.encode() in p.read_bytes()]


def test_an_expired_source_handle_is_planned_and_regenerated(built, fake, tmp_path):
    board = tmp_path / "copy" / "storyboard.toml"
    shutil.copytree(built[0].parent, board.parent)
    lock = lock_of(board)
    source = lock["shots"]["captain"]
    source["handle"]["expires"] = "2020-01-01T00:00:00Z"
    board.with_name("storyboard.lock").write_text(json.dumps(lock, indent=2))
    action = board.parent / ".storyboard" / "actions" / f"{source['key']}.json"
    entry = json.loads(action.read_text())
    entry["handle"]["expires"] = "2020-01-01T00:00:00Z"
    action.write_text(json.dumps(entry))
    env = gemini_env(fake)

    plan = storyboard("plan", str(board), env=env)
    assert plan.returncode == 0, plan.stderr
    rows = {line.split()[0]: line for line in plan.stdout.splitlines() if line.split()}
    assert "gemini file handle expired at 2020-01-01T00:00:00Z" in rows["captain"]
    assert "'storm' extends it" in rows["captain"] and "$3.20" in rows["captain"]
    assert "upstream 'captain' reruns" in rows["storm"]
    assert "cached" in rows["harbour"] and "cached" in rows["sea"]
    as_json = json.loads(storyboard("plan", str(board), "--json", env=env).stdout)
    by_shot = {row["shot"]: row for row in as_json["shots"]}
    assert by_shot["captain"]["status"] == "to run" and by_shot["captain"]["cost"] == pytest.approx(3.20)
    assert by_shot["storm"]["status"] == "may rerun"
    assert as_json["cost"] == {"USD": pytest.approx(3.20 + 2.80)}  # the source again, and 7 s of extension

    result = storyboard("build", str(board), env=env)
    assert result.returncode == 0, result.stderr
    assert fake.submissions == {PROMPTS["captain"]: 1}
    assert "captain: rendered" in result.stdout
    assert "storm: cached" in result.stdout  # the fake's new clip has the old bytes, so the extension's key holds
    fresh = lock_of(board)["shots"]["captain"]["handle"]
    assert fresh["uri"] != source["handle"]["uri"] and fresh["expires"] > "2020"


# ---- faults ---------------------------------------------------------------------------------------

ONE = """
[film]
output = "out/film.mp4"
provider = "gemini"
duration = 4

[providers.gemini]
allow_retired = true  # the fake still serves the shut-down preview models
poll_interval = 0.01

[[shot]]
id = "pier"
prompt = "waves against the pier"
"""


def test_a_safety_block_fails_that_shot_quoting_the_reason(fake, tmp_path):
    board = write_project(tmp_path, ONE + '\n[[shot]]\nid = "wreck"\nprompt = "the wreck [rai]"\n'
                          '\n[[shot]]\nid = "after"\ncontinues = "wreck"\nprompt = "divers at the wreck"\n')
    result = storyboard("build", str(board), "--keep-going", env=gemini_env(fake))
    assert result.returncode == 1
    assert f"failed: wreck: shot 'wreck': gemini: the video was blocked by Google's safety filters: \"{RAI_REASON}\"" \
        in result.stderr
    assert "after: skipped (upstream 'wreck' failed)" in result.stdout
    assert "summary: 1 rendered, 1 failed, 1 skipped" in result.stdout
    assert fake.submissions == {"waves against the pier": 1, "the wreck [rai]": 1}
    assert not journals(tmp_path / ".storyboard")  # a finished operation is final
    assert_objects_intact(tmp_path / ".storyboard")


def test_a_429_with_retry_after_is_retried_then_succeeds(fake, tmp_path):
    fake.fail("submit", 429, retry_after="0")
    board = write_project(tmp_path, ONE)
    result = storyboard("build", str(board), env=gemini_env(fake))
    assert result.returncode == 0, result.stderr
    assert "HTTP 429" in result.stderr and "Resource has been exhausted" in result.stderr
    assert "retrying in 0.0 s (try 2 of 6)" in result.stderr  # Retry-After, not the 1-2 s backoff
    assert fake.count("submit") == 2 and fake.submissions == {"waves against the pier": 1}
    assert "(4.00 s, stitched)" in result.stdout
    assert KEY not in result.stdout + result.stderr


def test_503s_on_poll_and_a_truncated_download_are_retried(fake, tmp_path):
    fake.fail("poll", 503, times=2, retry_after="0")
    fake.truncate()
    board = write_project(tmp_path, ONE)
    result = storyboard("build", str(board), env=gemini_env(fake))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("HTTP 503") == 2 and "without sending complete message body" in result.stderr
    assert fake.count("poll") == 5 and fake.count("media") == 2  # 2 faulted + 3 polls; 1 short + 1 whole
    assert fake.submissions == {"waves against the pier": 1}
    assert_objects_intact(tmp_path / ".storyboard")


# a connection reset on submit is not retried (the job may exist): tests/test_paid_once.py


@pytest.mark.parametrize("how", ["401", "wrong key"])
def test_a_rejected_key_fails_at_once_with_the_api_message(fake, tmp_path, how):
    env = gemini_env(fake)
    if how == "401":
        fake.fail("submit", 401)
        says = "HTTP 401 from POST /v1beta/models/veo-3.1-generate-preview:predictLongRunning: Request had " \
               "invalid authentication credentials. (UNAUTHENTICATED)"
    else:
        env["GEMINI_API_KEY"] = "AIza-not-the-right-key"
        says = "HTTP 400 from POST /v1beta/models/veo-3.1-generate-preview:predictLongRunning: API key not " \
               "valid. Please pass a valid API key. (INVALID_ARGUMENT)"
    board = write_project(tmp_path, ONE)
    started = time.monotonic()
    result = storyboard("build", str(board), env=env)
    assert result.returncode == 1
    assert time.monotonic() - started < 20  # no backoff: retrying would take 1 + 2 + 4 + 8 + 16 s
    assert f"failed: pier: shot 'pier': gemini: {says}" in result.stderr
    assert fake.count("submit") == 1 and not fake.submissions
    assert "AIza-not-the-right-key" not in result.stdout + result.stderr
    assert not journals(tmp_path / ".storyboard")


def test_an_operation_error_fails_and_the_next_build_submits_afresh(fake, tmp_path):
    fake.outcome = "error"
    board = write_project(tmp_path, ONE)
    env = gemini_env(fake)
    result = storyboard("build", str(board), env=env)
    assert result.returncode == 1
    assert "the operation failed: Video generation failed due to an internal error. Please retry. (code 13)" \
        in result.stderr
    fake.outcome = "ok"
    again = storyboard("build", str(board), env=env)
    assert again.returncode == 0, again.stderr
    assert fake.submissions == {"waves against the pier": 2}


def test_an_expired_download_fails_and_the_next_build_submits_afresh(fake, tmp_path):
    fake.fail("download", 404, message="File not found or expired.")
    board = write_project(tmp_path, ONE)
    env = gemini_env(fake)
    result = storyboard("build", str(board), env=env)
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr and "File not found or expired." in result.stderr
    again = storyboard("build", str(board), env=env)
    assert again.returncode == 0, again.stderr
    assert fake.submissions == {"waves against the pier": 2}
