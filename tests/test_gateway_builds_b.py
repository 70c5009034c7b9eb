"""`build` end to end against the UniAll and CometAPI fakes (UniAll's inputs through a loopback S3)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

import storyboard.providers
from storyboard.build import build, open_project, plan_project
from storyboard.errors import StoryboardFileError
from storyboard.executor import Outcome
from storyboard.media import probe
from tests.fakes.cometapi_server import FakeCometApi, cometapi_fake, cometapi_server  # noqa: F401
from tests.fakes.s3_server import S3Bucket, s3  # noqa: F401
from tests.fakes.uniall_server import FakeUniAll, uniall_fake, uniall_server  # noqa: F401

UNIALL_KEY = "sk-uniall-BUILD-secret-key-9876543210"
COMETAPI_KEY = "sk-comet-BUILD-secret-key-9876543210"

UNIALL_SHOTS = """
[assets]
fox = "assets/fox.png"
owl = "assets/owl.png"

[[shot]]
id = "a"
prompt = "a red fox wakes up"
seed = 7

[[shot]]
id = "b"
continues = "a"
prompt = "the fox runs"

[[shot]]
id = "c"
references = ["fox", "owl"]
prompt = "the fox meets the owl"
duration = 8

[[shot]]
id = "d"
extends = "a"
prompt = "the fox leaps"
duration = 8
"""
COMETAPI_SHOTS = """
[assets]
den = "assets/den.png"

[[shot]]
id = "a"
prompt = "a red fox wakes up"

[[shot]]
id = "b"
continues = "a"
last_frame = "den"
prompt = "the fox runs home"
"""


@pytest.fixture
def uniall(monkeypatch, uniall_fake):  # noqa: F811
    monkeypatch.setitem(storyboard.providers.BUILTIN, "uniall", "storyboard.providers.uniall:UniAllProvider")
    monkeypatch.setenv("UNIALL_API_KEY", UNIALL_KEY)
    monkeypatch.setenv("STORYBOARD_UNIALL_BASE_URL", uniall_fake.url)
    uniall_fake.api_key = UNIALL_KEY
    yield uniall_fake
    uniall_fake.api_key = "fake-uniall-key"


@pytest.fixture
def cometapi(monkeypatch, cometapi_fake):  # noqa: F811
    monkeypatch.setitem(storyboard.providers.BUILTIN, "cometapi", "storyboard.providers.cometapi:CometApiProvider")
    monkeypatch.setenv("COMETAPI_API_KEY", COMETAPI_KEY)
    monkeypatch.setenv("STORYBOARD_COMETAPI_BASE_URL", cometapi_fake.url)
    cometapi_fake.api_key = COMETAPI_KEY
    yield cometapi_fake
    cometapi_fake.api_key = "fake-cometapi-key"


def board(provider: str, shots: str, table: str = "", duration: int = 4) -> str:
    return (f'[film]\nprovider = "{provider}"\nduration = {duration}\n\n[providers.{provider}]\npoll_interval = 0.01\n'
            f"{table}{shots}")


def upload_table(bucket: S3Bucket) -> str:
    return f'upload = "{bucket.upload_url("board")}"\npublic_url = "{bucket.public_url}"\n'


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_secret_kept(root: Path, *secrets: str) -> None:
    """No secret is in any file the build wrote: lock, journal, actions, objects."""
    for path in [root / "storyboard.lock", *(root / ".storyboard").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in secrets if s.encode() in data], path


def built(path: Path):
    project = open_project(path)
    return project, build(project)


def test_uniall_builds_the_board_once_publishing_every_input(uniall, s3, write_board):  # noqa: F811
    path = write_board(board("uniall", UNIALL_SHOTS, upload_table(s3)), fox=(200, 80, 20), owl=(90, 90, 90))
    project, report = built(path)

    assert not report.failed and report.count(Outcome.RENDERED) == 4
    assert probe(report.film.path).duration == pytest.approx(4 + 8 + 11, abs=0.1)  # 'd' contains 'a': not in the film
    assert uniall.submissions == {"a red fox wakes up": 1, "the fox runs": 1, "the fox meets the owl": 1,
                                  "the fox leaps": 1}

    lock = project.lock.shots
    bodies = {b["prompt"]: b for b in uniall.bodies("submit")}
    assert bodies["a red fox wakes up"] == {"model": "veo3.1-video-720p", "prompt": "a red fox wakes up",
                                            "size": "720p", "aspect_ratio": "16:9", "duration": 4,
                                            "extra_body": {"generate_audio": True, "seed": 7}}
    public = f"{s3.endpoint}/{s3.bucket}/board"
    runs = bodies["the fox runs"]
    # the handed-off frame is published under its pixel digest (the name in b's key), holding a's last-frame PNG
    frame = lock["b"]["components"]["first_frame"]
    assert runs["image"] == f"{public}/{frame}.png" and uniall.fetched[runs["image"]] == lock["a"]["last"]
    assets = [sha(path.parent / "assets" / f"{name}.png") for name in ("fox", "owl")]
    meets = bodies["the fox meets the owl"]
    assert meets["images"] == [f"{public}/{d}.png" for d in assets] and meets["duration"] == 8
    assert [uniall.fetched[u] for u in meets["images"]] == assets
    leaps = bodies["the fox leaps"]
    assert leaps["video"] == f"{public}/{lock['a']['clip']}.mp4" and uniall.fetched[leaps["video"]] == lock["a"]["clip"]
    assert "duration" not in leaps and "aspect_ratio" not in leaps
    uploaded = s3.keys()
    assert uploaded == sorted(f"board/{n}" for n in (f"{frame}.png", f"{lock['a']['clip']}.mp4",
                                                     *(f"{d}.png" for d in assets)))
    assert not list((path.parent / ".storyboard" / "journal").glob("*.json"))

    before = uniall.stats()
    _, again = built(path)
    assert again.count(Outcome.CACHED) == 4 and uniall.stats() == before and s3.keys() == uploaded
    assert_secret_kept(path.parent, UNIALL_KEY, "fake-s3-secret-that-must-never-leak-0123")


def test_cometapi_builds_the_board_once_with_first_and_last_frames(cometapi, write_board):
    cometapi.fail("submit", 429, retry_after="0")
    path = write_board(board("cometapi", COMETAPI_SHOTS, duration=8), den=(30, 60, 90))
    project, report = built(path)

    assert not report.failed and report.count(Outcome.RENDERED) == 2
    assert probe(report.film.path).duration == pytest.approx(16.0, abs=0.1)
    assert cometapi.submissions == {"a red fox wakes up": 1, "the fox runs home": 1}
    assert cometapi.count("submit") == 3
    bodies = {b["fields"]["prompt"]: b for b in cometapi.bodies("submit") if "fields" in b}
    assert bodies["a red fox wakes up"]["fields"] == {"prompt": "a red fox wakes up", "model": "veo3.1",
                                                      "size": "16x9"}
    files = bodies["the fox runs home"]["files"]
    lock = project.lock.shots
    assert [(f["filename"], f["sha256"]) for f in files] == [
        ("first.png", lock["a"]["last"]), ("last.png", sha(path.parent / "assets" / "den.png"))]
    assert {lock[s]["cost"] for s in "ab"} == {0.4} and {lock[s]["unit"] for s in "ab"} == {"USD"}

    before = cometapi.stats()
    _, again = built(path)
    assert again.count(Outcome.CACHED) == 2 and cometapi.stats() == before
    assert_secret_kept(path.parent, COMETAPI_KEY)


def test_plan_prices_cometapi_per_request_and_leaves_uniall_unpriced(uniall, cometapi, s3, write_board):  # noqa: F811
    from storyboard.plan_view import view

    project = open_project(write_board(board("cometapi", COMETAPI_SHOTS, duration=8), den=(1, 2, 3)))
    pv = view(project, plan_project(project)[0])
    assert [(r.cost, r.unit) for r in pv.rows] == [(0.4, "USD"), (0.4, "USD")]

    path = write_board(board("uniall", UNIALL_SHOTS, upload_table(s3)), "other", fox=(1, 2, 3), owl=(4, 5, 6))
    pv = view(open_project(path), plan_project(open_project(path))[0])
    assert [r.cost for r in pv.rows] == [None] * 4
    assert uniall.stats()["counts"] == {} and cometapi.stats()["counts"] == {} and s3.keys() == []


@pytest.mark.parametrize("shot, field", [
    ('[[shot]]\nid = "k"\ncontinues = "a"\nprompt = "next"\n', "continues"),
    ('[[shot]]\nid = "k"\nfirst_frame = "fox"\nprompt = "next"\n', "first_frame"),
    ('[[shot]]\nid = "k"\nreferences = ["fox", "owl"]\nprompt = "next"\nduration = 8\n', "references"),
    ('[[shot]]\nid = "k"\nextends = "a"\nprompt = "next"\nduration = 8\n', "extends"),
])
def test_uniall_without_an_upload_target_refuses_shots_with_inputs(uniall, write_board, shot, field):
    shots = '[assets]\nfox = "assets/fox.png"\nowl = "assets/owl.png"\n\n[[shot]]\nid = "a"\nprompt = "p"\n\n' + shot
    with pytest.raises(StoryboardFileError, match=r"uniall takes images and clips only as URLs: set upload = "
                                                  r"\"s3://bucket/prefix\"") as info:
        open_project(write_board(board("uniall", shots), fox=(1, 2, 3), owl=(4, 5, 6)))
    assert "shot 'k'" in info.value.message and field in info.value.message
    assert uniall.stats()["counts"] == {}


@pytest.mark.parametrize("provider, extra, says, field", [
    ("cometapi", 'duration = 4\n', "4 s is not a duration cometapi (veo3.1) makes; choose 8", "duration"),
    ("cometapi", 'resolution = "1080p"\n', "does not make 1080p; choose 720p", "resolution"),
    ("cometapi", 'seed = 3\n', "does not take a seed", "seed"),
    ("cometapi", 'negative_prompt = "blur"\n', "does not take a negative prompt", "negative_prompt"),
    ("cometapi", 'audio = false\n', "always generates audio", "audio"),
    ("cometapi", 'references = ["fox"]\n', "accepts at most 0", "references"),
    ("cometapi", 'extends = "a"\n', "cannot extend a clip", "extends"),
    ("uniall", 'model = "veo3.1-fast"\nreferences = ["fox", "owl"]\n', "uniall (veo3.1-fast) accepts at most 0",
     "references"),
    ("uniall", 'model = "veo3.1-video-1080p"\n', "does not make 720p; choose 1080p", "resolution"),
])
def test_what_a_gateway_cannot_do_is_refused_before_any_request(uniall, cometapi, s3, write_board,  # noqa: F811
                                                                provider, extra, says, field):
    shots = ('[assets]\nfox = "assets/fox.png"\nowl = "assets/owl.png"\n\n[[shot]]\nid = "a"\nprompt = "p"\n\n'
             f'[[shot]]\nid = "k"\nprompt = "next"\n{extra}')
    table = upload_table(s3) if provider == "uniall" else ""
    with pytest.raises(StoryboardFileError, match=re.escape(says)) as info:
        open_project(write_board(board(provider, shots, table, duration=8), fox=(1, 2, 3), owl=(4, 5, 6)))
    assert "shot 'k'" in info.value.message and field in info.value.message
    assert uniall.stats()["counts"] == {} and cometapi.stats()["counts"] == {}
