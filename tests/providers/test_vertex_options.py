"""Vertex's options per shot (`options = {...}`) and per table: validated, sent, and keyed where they shape the clip."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from storyboard.build import open_project, plan_project
from storyboard.cache import cache_key
from storyboard.job import RenderJob, key_components
from storyboard.media import probe
from tests.fakes.google_server import FakeGoogle, google_fake, google_server  # noqa: F401
from tests.test_cli import run_main

KEY_BEFORE_OPTIONS = {
    "text": "4e3028daa533772a57e2935844cfa7a2fa62215d400e27b69005a1a71d3c7cf4",
    "first_frame": "ed264441214b86c110a818f83502cc60765bfad51d5139792af5202f2a0e83f3",
}
"""Keys of two jobs as the code before `options` existed computed them (d8a99f8, run on main's tree)."""


def write(folder: Path, shots: str, table: str = "") -> Path:
    (folder / "assets").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 36), "navy").save(folder / "assets" / "door.png")
    path = folder / "storyboard.toml"
    path.write_text(f"""
[film]
provider = "vertex"
output = "out/film.mp4"
duration = 4
audio = false

[providers.vertex]
project = "fake-project"
poll_interval = 0.01
{table}

[assets]
door = "assets/door.png"
{shots}""")
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, google_fake: FakeGoogle) -> FakeGoogle:  # noqa: F811
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", google_fake.token)
    monkeypatch.setenv("STORYBOARD_VERTEX_BASE_URL", google_fake.url)
    monkeypatch.setenv("STORYBOARD_VERTEX_STORAGE_BASE_URL", google_fake.url)
    return google_fake


def keys(path: Path) -> dict[str, str]:
    return {step.shot: step.key for step in plan_project(open_project(path))[0]}


def jobs(path: Path) -> dict[str, RenderJob]:
    return {step.shot: step.job for step in plan_project(open_project(path))[0]}


# ---- validation -------------------------------------------------------------------------------------

BAD = """
[[shot]]
id = "typo"
prompt = "a lighthouse"
options = {{ person_generaton = "allow_adult" }}

[[shot]]
id = "elsewhere"
provider = "{other}"
prompt = "a harbour"
options = {{ resize_mode = "crop" }}

[[shot]]
id = "value"
prompt = "a pier"
options = {{ compression_quality = "tiny" }}

[[shot]]
id = "no-image"
prompt = "the sea"
options = {{ resize_mode = "crop" }}

[[shot]]
id = "bucket"
prompt = "the sky"
options = {{ storage_uri = "s3://films/" }}
"""


def test_every_bad_option_is_reported_at_once_with_its_line_and_exit_2(tmp_path, env, capsys, monkeypatch):
    path = write(tmp_path, BAD.format(other="animatic"))
    code, _, err = run_main(["validate", str(path)], capsys, monkeypatch)
    lines = path.read_text().splitlines()

    def line(text: str) -> int:
        return next(i for i, t in enumerate(lines, 1) if text in t)

    assert code == 2, err
    assert (f"line {line('person_generaton')}: shot 'typo': field 'options.person_generaton': unknown option "
            "'person_generaton' (did you mean 'person_generation'?); vertex takes compression_quality, "
            "person_generation, resize_mode, storage_uri") in err
    crop = line('resize_mode = "crop"')  # the first of two: shot 'elsewhere'
    assert (f"line {crop}: shot 'elsewhere': field 'options.resize_mode': animatic has no option 'resize_mode'; "
            "it is a vertex option (provider = \"vertex\")") in err
    assert "shot 'value': field 'options.compression_quality': vertex: Input should be 'optimized' or " \
           "'lossless' (got 'tiny')" in err
    assert "shot 'no-image': field 'options.resize_mode': 'resize_mode' shapes how the first frame fits the " \
           "video, but the shot has no first_frame" in err
    assert "shot 'bucket': field 'options.storage_uri'" in err and "gs://BUCKET/FOLDER/" in err
    assert "Traceback" not in err


def test_a_provider_without_options_refuses_any(tmp_path, env, capsys, monkeypatch):
    path = write(tmp_path, """
[[shot]]
id = "a"
provider = "animatic"
prompt = "a lighthouse"
options = { flavour = "salty" }
""")
    code, _, err = run_main(["validate", str(path)], capsys, monkeypatch)
    assert code == 2 and "field 'options.flavour': unknown option 'flavour'; animatic takes no options" in err


# ---- the cache key -------------------------------------------------------------------------------------

PLAIN = """
[[shot]]
id = "text"
prompt = "A lighthouse at dusk"
duration = 6
seed = 7

[[shot]]
id = "first_frame"
prompt = "A lighthouse at dusk"
first_frame = "door"
resolution = "1080p"
duration = 8
audio = true
"""


def test_shots_without_options_keep_the_keys_they_had_before_options_existed():
    text = RenderJob(provider="vertex", model="veo-3.1-generate-001", prompt="A lighthouse at dusk", duration=6,
                     seed=7, audio=False)
    framed = RenderJob(provider="vertex", model="veo-3.1-generate-001", prompt="A lighthouse at dusk",
                       first_frame="a" * 64, resolution="1080p")
    assert cache_key(key_components(text)) == KEY_BEFORE_OPTIONS["text"]
    assert cache_key(key_components(framed)) == KEY_BEFORE_OPTIONS["first_frame"]
    assert "options" not in key_components(text)


def test_a_board_without_options_plans_the_same_keys_and_a_delivery_option_changes_none(tmp_path, env):
    plain = keys(write(tmp_path / "plain", PLAIN))
    assert plain["text"] == KEY_BEFORE_OPTIONS["text"]  # the planned job is the one keyed before options
    delivered = keys(write(tmp_path / "gcs", PLAIN, 'storage_uri = "gs://films/renders/"'))
    assert delivered == plain  # storage_uri moves the clip into a bucket; the pixels are the same
    per_shot = keys(write(tmp_path / "gcs-shot", PLAIN.replace('seed = 7', 'seed = 7\noptions = { storage_uri = '
                                                                '"gs://films/renders/" }')))
    assert per_shot == plain


def test_options_that_shape_the_clip_change_its_key(tmp_path, env):
    plain = keys(write(tmp_path / "plain", PLAIN))
    adults = keys(write(tmp_path / "adults", PLAIN.replace('seed = 7', 'seed = 7\noptions = { person_generation = '
                                                               '"dont_allow" }')))
    assert adults["text"] != plain["text"] and adults["first_frame"] == plain["first_frame"]
    table = keys(write(tmp_path / "table", PLAIN, 'compression_quality = "lossless"'))
    assert table["text"] != plain["text"] and table["first_frame"] != plain["first_frame"]
    # resize_mode fits a first frame: a text shot does not send it, so its key does not move
    resize = keys(write(tmp_path / "resize", PLAIN, 'resize_mode = "crop"'))
    assert resize["text"] == plain["text"] and resize["first_frame"] != plain["first_frame"]
    # the shot's own option wins over the table's, and says the same as setting it in the table
    both = write(tmp_path / "both", PLAIN.replace('seed = 7', 'seed = 7\noptions = { compression_quality = '
                                                  '"optimized" }'), 'compression_quality = "lossless"')
    assert dict(jobs(both)["text"].options) == {"compression_quality": "optimized"}
    same = keys(write(tmp_path / "same", PLAIN, 'compression_quality = "optimized"'))
    assert keys(both)["text"] == same["text"]


# ---- on the wire, end to end ---------------------------------------------------------------------------

WIRE = """
[[shot]]
id = "crowd"
prompt = "A crowd on the quay"
options = { person_generation = "dont_allow", compression_quality = "lossless" }

[[shot]]
id = "door"
prompt = "The keeper opens the door"
first_frame = "door"
options = { resize_mode = "crop", storage_uri = "gs://films/door/" }

[[shot]]
id = "sea"
prompt = "The open sea"
"""


def test_a_build_sends_each_shots_options_under_the_tables(tmp_path, env, capsys, monkeypatch):
    path = write(tmp_path, WIRE, 'person_generation = "allow_adult"')
    code, out, err = run_main(["build", str(path), "--yes"], capsys, monkeypatch)
    assert code == 0, err

    sent = {body["instances"][0]["prompt"]: body["parameters"] for body in env.bodies("submit")}
    options = {name: {k: v for k, v in parameters.items() if k in ("personGeneration", "compressionQuality",
                                                                    "resizeMode", "storageUri")}
               for name, parameters in sent.items()}
    assert options == {
        "A crowd on the quay": {"personGeneration": "dont_allow", "compressionQuality": "lossless"},
        "The keeper opens the door": {"personGeneration": "allow_adult", "resizeMode": "crop",
                                      "storageUri": "gs://films/door/"},
        "The open sea": {"personGeneration": "allow_adult"},
    }
    assert env.count("download") == 1  # the door went through the bucket, the others came inline
    film = probe(path.parent / "out" / "film.mp4")
    assert film.duration == pytest.approx(12.0, abs=0.1)

    again, _, err = run_main(["build", str(path), "--yes"], capsys, monkeypatch)
    assert again == 0 and env.count("submit") == 3  # all cached: the options are part of what was paid for
