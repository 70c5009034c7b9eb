"""`storyboard build` with provider "omni" against the loopback Interactions fake: every task, faults, kill -9."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
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
from tests.fakes._kit import Fault
from tests.fakes.interactions_server import FakeInteractions, clip

KEY = "AIzaOMNI-build-key-5555"

BOARD = """
[film]
output = "out/film.mp4"
provider = "omni"
duration = 3
resolution = "360p"

[providers.omni]
poll_interval = 0.01

[assets]
hero = "assets/hero.png"
rival = "assets/rival.png"
footage = "assets/footage.mp4"

[[shot]]
id = "street"
prompt = "a quiet street at dawn"

[[shot]]
id = "door"
first_frame = "hero"
prompt = "the hero opens a door"

[[shot]]
id = "walk"
first_frame = "hero"
last_frame = "rival"
duration = 4.5
prompt = "the hero walks and becomes the rival"

[[shot]]
id = "meet"
references = ["hero", "rival"]
prompt = "<IMAGE_REF_0> meets <IMAGE_REF_1> in a cafe"

[[shot]]
id = "more"
extends = "street"
prompt = "the street wakes up"

[[shot]]
id = "storm"
edits = "door"
prompt = "make it night, heavy rain"

[[shot]]
id = "mine"
edits = "footage"
prompt = "turn it into an oil painting"

[[shot]]
id = "longer"
extends = "footage"
prompt = "the footage goes on"
"""
TASKS = {"a quiet street at dawn": "text_to_video", "the hero opens a door": "image_to_video",
         "the hero walks and becomes the rival": "image_to_video",
         "<IMAGE_REF_0> meets <IMAGE_REF_1> in a cafe": "reference_to_video",
         "the street wakes up": "extend", "make it night, heavy rain": "edit", "turn it into an oil painting": "edit",
         "the footage goes on": "extend"}
FOOTAGE_FRAMES = 60  # 2.5 s: an edit is as long as its source, fractional seconds included


@pytest.fixture(scope="module")
def server():
    with FakeInteractions(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeInteractions) -> FakeInteractions:
    server.reset()
    server.polls = 1
    return server


storyboard = partial(run_storyboard, yes=True)
"""`storyboard ARGS`, past the paid-work confirmation: the fake charges nothing."""


def env_for(fake: FakeInteractions) -> dict[str, str]:
    return clean_env(GEMINI_API_KEY=KEY, STORYBOARD_OMNI_BASE_URL=fake.url)


def write_project(root: Path, text: str = BOARD) -> Path:
    (root / "assets").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 36), (200, 30, 30)).save(root / "assets" / "hero.png")
    Image.new("RGB", (64, 36), (30, 30, 200)).save(root / "assets" / "rival.png")
    (root / "assets" / "footage.mp4").write_bytes(clip(FOOTAGE_FRAMES, (640, 360)))
    board = root / "storyboard.toml"
    board.write_text(text)
    return board


def lock_of(board: Path) -> dict:
    return json.loads(board.with_name("storyboard.lock").read_text())


def video_data(body: dict) -> bytes:
    [block] = [b for b in body["input"][0]["content"] if b["type"] == "video"]
    return base64.b64decode(block["data"])


def by_prompt(fake: FakeInteractions) -> dict[str, dict]:
    bodies = {}
    for body in fake.bodies("create"):
        content = body["input"] if isinstance(body["input"], str) else body["input"][0]["content"][-1]["text"]
        bodies[content] = body
    return bodies


def frames_of(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, server: FakeInteractions):
    server.reset()
    board = write_project(tmp_path_factory.mktemp("omni"))
    result = storyboard("build", str(board), env=env_for(server))
    return board, result, by_prompt(server), server.count("create")


def test_every_task_builds_into_one_film(built):
    board, result, bodies, creates = built
    assert result.returncode == 0, result.stderr
    assert creates == 8 and set(bodies) == set(TASKS)
    assert {p: b["generation_config"]["video_config"]["task"] for p, b in bodies.items()} == TASKS
    assert bodies["the hero walks and becomes the rival"]["response_format"]["duration"] == "4.5s"
    # default sequence: 'more' replaces 'street', 'storm' replaces 'door'; then walk, meet, mine, longer
    film = board.parent / "out" / "film.mp4"
    assert frames_of(film) == (3 + 7) * 24 + 3 * 24 + 108 + 3 * 24 + FOOTAGE_FRAMES + FOOTAGE_FRAMES + 7 * 24
    assert KEY not in result.stdout + result.stderr + board.with_name("storyboard.lock").read_text()


def test_edits_send_the_source_clip_bytes(built):
    board, _, bodies, _ = built
    lock, cache = lock_of(board), board.parent / ".storyboard" / "objects"
    door = lock["shots"]["door"]["clip"]
    assert hashlib.sha256(video_data(bodies["make it night, heavy rain"])).hexdigest() == door
    assert (cache / door[:2] / door).is_file()
    footage = (board.parent / "assets" / "footage.mp4").read_bytes()
    assert video_data(bodies["turn it into an oil painting"]) == footage
    assert video_data(bodies["the footage goes on"]) == footage
    assert bodies["make it night, heavy rain"]["response_format"] == {"type": "video", "resolution": "360p"}


def test_a_changed_source_clip_reruns_only_its_edit(built, fake):
    board, _, _, _ = built
    (board.parent / "assets" / "footage.mp4").write_bytes(clip(FOOTAGE_FRAMES + 12, (640, 360)))
    again = storyboard("build", str(board), env=env_for(fake))
    assert again.returncode == 0, again.stderr
    assert sorted(b["input"][0]["content"][-1]["text"] for b in fake.bodies("create")) == \
        ["the footage goes on", "turn it into an oil painting"]


def test_plan_estimates_the_cost_and_says_so(built, fake):
    board, _, _, _ = built
    (board.parent / "storyboard.toml").write_text(BOARD.replace("a quiet street at dawn", "a busy street"))
    planned = storyboard("plan", str(board), env=env_for(fake))
    assert planned.returncode == 0, planned.stderr
    assert "estimate" in planned.stdout.lower()
    assert fake.count("create") == 0


@pytest.mark.parametrize("token, words", [("[blocked]", "content_blocked"), ("[filtered]", "without a video"),
                                          ("[failed]", "Video generation failed")])
def test_a_blocked_or_failed_shot_fails_the_build_naming_it(fake, tmp_path, token, words):
    board = write_project(tmp_path, BOARD.split("[[shot]]")[0] + f'[[shot]]\nid = "one"\nprompt = "rain {token}"\n')
    result = storyboard("build", str(board), env=env_for(fake))
    assert result.returncode == 1
    assert "shot 'one'" in result.stderr and words in result.stderr
    assert fake.count("create") == 1


def test_429_and_5xx_are_retried_within_the_build(fake, tmp_path):
    board = write_project(tmp_path, BOARD.split("[[shot]]")[0] + '[[shot]]\nid = "one"\nprompt = "sun"\n')
    fake.faults.add("create", Fault.status_code(429, retry_after="0"))
    fake.faults.add("poll", Fault.status_code(500))
    result = storyboard("build", str(board), env=env_for(fake))
    assert result.returncode == 0, result.stderr
    assert fake.count("create") == 2


def test_a_provider_that_cannot_edit_refuses_at_validation(fake, tmp_path):
    board = write_project(tmp_path, BOARD.replace('id = "storm"\n', 'id = "storm"\nprovider = "animatic"\n'))
    result = storyboard("validate", str(board), env=env_for(fake))
    assert result.returncode == 2
    assert "storm" in result.stderr and "edits" in result.stderr and "cannot edit" in result.stderr


def test_only_omni_extends_footage(fake, tmp_path):
    board = write_project(tmp_path, BOARD.replace('id = "longer"\n', 'id = "longer"\nprovider = "animatic"\n'))
    result = storyboard("validate", str(board), env=env_for(fake))
    assert result.returncode == 2
    assert "longer" in result.stderr and "extends" in result.stderr and "footage" in result.stderr


@pytest.mark.parametrize("duration", ["2.5", "15.5"])
def test_a_duration_outside_the_models_range_is_a_validation_error(fake, tmp_path, duration):
    board = write_project(tmp_path, BOARD.replace('id = "door"\n', f'id = "door"\nduration = {duration}\n'))
    result = storyboard("validate", str(board), env=env_for(fake))
    assert result.returncode == 2, result.stderr
    assert "door" in result.stderr and "duration" in result.stderr and "3 to 15 s" in result.stderr


def test_a_negative_prompt_is_a_validation_error(fake, tmp_path):
    board = write_project(tmp_path, BOARD.replace('id = "door"\n', 'id = "door"\nnegative_prompt = "blur"\n'))
    result = storyboard("validate", str(board), env=env_for(fake))
    assert result.returncode == 2 and "negative_prompt" in result.stderr and "door" in result.stderr


def test_kill_9_while_polling_resumes_without_a_second_create(fake, tmp_path):
    board = write_project(tmp_path, BOARD.split("[[shot]]")[0] + '[[shot]]\nid = "one"\nprompt = "long take"\n')
    fake.polls = 10**9
    env = env_for(fake)
    proc = subprocess.Popen([sys.executable, "-m", "storyboard", "build", str(board), "--yes"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    journal = tmp_path / ".storyboard" / "journal"
    try:
        deadline = time.monotonic() + 120
        while not (fake.count("poll") >= 2 and any(journal.glob("*.json"))):
            assert proc.poll() is None and time.monotonic() < deadline, "the build never started polling"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert fake.count("create") == 1
    fake.finish_all()
    result = storyboard("build", str(board), env=env)
    assert result.returncode == 0, result.stderr
    assert fake.count("create") == 1 and not list(journal.glob("*.json"))
    assert (tmp_path / "out" / "film.mp4").is_file()
