"""Tests for the animatic provider: real renders, decoded with PyAV and compared to the inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw

from storyboard import media
from storyboard.sniff import sniff
from storyboard.job import Capabilities, Price, RenderContext, RenderJob
from storyboard.providers import ProviderSettings, load_provider
from storyboard.providers.animatic import (
    AnimaticProvider,
    camera_runs,
    caption_lines,
    filter_value,
    look_for,
)

NASTY_PROMPT = "It's 100% \"fine\": a [test], {x}; back\\slash, %{pts} and\nnewlines " * 3


class Journal:
    """In-memory journal."""

    def __init__(self) -> None:
        self.entry: dict[str, Any] | None = None

    def read(self) -> dict[str, Any] | None:
        return self.entry

    def write(self, entry: dict[str, Any]) -> None:
        self.entry = entry

    def clear(self) -> None:
        self.entry = None


def _picture(w: int, h: int, flip: bool) -> Image.Image:
    """A smooth, colourful test picture with hard-edged shapes, like a real frame."""
    x, y = np.linspace(0, 1, w)[None, :], np.linspace(0, 1, h)[:, None]
    if flip:
        x = x[:, ::-1]
    rgb = np.stack(
        np.broadcast_arrays(255 * x, 255 * y, 128 + 100 * np.sin(8 * x + 5 * y)), axis=-1
    )
    image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    disc = (30, 40, 200) if flip else (200, 40, 40)
    draw.ellipse([w * 0.2, h * 0.2, w * 0.5, h * 0.8], fill=disc)
    draw.rectangle([w * 0.6, h * 0.1, w * 0.9, h * 0.5], fill=(20, 200, 80))
    return image


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Input digests -> files, named without extensions as the cache names objects."""
    root = tmp_path_factory.mktemp("inputs")
    files = {
        "first": (_picture(1280, 720, False), "PNG"),
        "last": (_picture(1280, 720, True), "JPEG"),
        "tall": (_picture(720, 1280, False), "PNG"),
        "square": (_picture(600, 600, True), "PNG"),
        "ref": (_picture(300, 400, True), "JPEG"),
    }
    for name, (image, fmt) in files.items():
        image.save(root / name, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return {name: root / name for name in files}


@pytest.fixture(scope="module")
def render(inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("renders")
    counter = iter(range(1000))

    def run(extra: dict[str, Path] | None = None, **fields: Any) -> Path:
        job = RenderJob(provider="animatic", model="animatic-veo-3.1", **fields)
        dest = root / f"clip{next(counter)}.tmp"
        seen: list[tuple[str, float | None]] = []
        ctx = RenderContext(
            shot_id="a",
            inputs={**inputs, **(extra or {})},
            journal=Journal(),
            progress=lambda state, fraction=None: seen.append((state, fraction)),
        )
        result = AnimaticProvider().render(job, dest, ctx)
        assert result.cost == Price(0.0, "USD")
        assert seen == [("rendering", None)]
        return dest

    return run


@pytest.fixture(scope="module")
def blend4(render: Any) -> Path:
    """4 s from the first picture to the last, with audio."""
    return render(prompt="a blend", duration=4, first_frame="first", last_frame="last", seed=3,
                  label="blend")


@pytest.fixture(scope="module")
def refs6(render: Any) -> Path:
    """6 s on a seeded background, reference thumbnails, a hostile prompt, no audio."""
    return render(prompt=NASTY_PROMPT, duration=6, references=("ref", "ref", "ref"), audio=False,
                  seed=11, label="shot-1")


@pytest.fixture(scope="module")
def plain8(render: Any) -> Path:
    """8 s, defaults: no seed, no pictures, audio on."""
    return render(prompt="a quiet harbour at dawn", label="dawn")


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _check_clip(path: Path, seconds: float, size: tuple[int, int]) -> media.MediaInfo:
    info = media.probe(path)
    assert sniff(path) == "mp4"
    assert (info.width, info.height) == size
    assert info.fps == 24.0 and info.frames == round(seconds * 24)
    assert info.duration == pytest.approx(seconds)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.audio_duration == pytest.approx(info.duration, abs=1 / 24)
    return info


def test_provider_contract() -> None:
    provider = load_provider("animatic")
    assert isinstance(provider, AnimaticProvider)
    assert (provider.name, provider.default_model, provider.key_env) == (
        "animatic", "animatic-veo-3.1", ()
    )
    assert provider.Settings is ProviderSettings and provider.labels_output is True
    assert provider.capabilities("anything") == Capabilities()
    job = RenderJob(provider="animatic", model="animatic-veo-3.1", prompt="x")
    assert provider.price(job) == Price(0.0, "USD")


def test_blend_starts_and_ends_on_the_given_pictures(blend4: Path, inputs: dict[str, Path]) -> None:
    frames = _frames(blend4)
    assert len(frames) == 96
    _check_clip(blend4, 4, (1280, 720))
    assert _mad(frames[0], _rgb(inputs["first"])) < 3
    assert _mad(frames[-1], _rgb(inputs["last"])) < 3
    middle = frames[48]
    assert _mad(middle, _rgb(inputs["first"])) > 20 and _mad(middle, _rgb(inputs["last"])) > 20


def test_blend_audio_is_a_quiet_bed_as_long_as_the_video(blend4: Path) -> None:
    samples = _audio(blend4)
    assert samples.shape[0] == 2
    assert samples.shape[1] / 48000 == pytest.approx(4, abs=1 / 24)
    rms = float(np.sqrt(np.mean(samples**2)))
    assert 0.002 < rms < 0.05


def test_six_seconds_with_references_and_silence(refs6: Path) -> None:
    _check_clip(refs6, 6, (1280, 720))
    assert np.abs(_audio(refs6)).max() < 1e-4
    frames = _frames(refs6)
    assert len(frames) == 144
    # The overlays (label top-left, thumbnails top-right) show mid-clip, not on the ends.
    corner = (slice(0, 200), slice(1030, 1280))
    assert _mad(frames[72][corner], frames[0][corner]) > 10
    assert _mad(frames[-1][corner], frames[0][corner]) < 4


def test_eight_seconds_default_job(plain8: Path) -> None:
    _check_clip(plain8, 8, (1280, 720))
    with av.open(str(plain8)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 192
    assert _audio(plain8).shape[1] / 48000 == pytest.approx(8, abs=1 / 24)


def test_first_frame_is_the_picture_whatever_the_seed_and_move(
    blend4: Path, render: Any, tmp_path: Path
) -> None:
    # Frame 0 is the picture itself (an IDR coded from it alone), so any other job starting on
    # it decodes to the very same pixels: no camera move, blend or overlay has touched it.
    other = render(prompt="other", duration=4, first_frame="first", seed=8, audio=False)
    media.extract_frame(blend4, "first", tmp_path / "a.png")
    media.extract_frame(other, "first", tmp_path / "b.png")
    assert np.array_equal(_rgb(tmp_path / "a.png"), _rgb(tmp_path / "b.png"))
    media.extract_frame(other, "last", tmp_path / "c.png")
    assert _mad(_rgb(tmp_path / "c.png"), _rgb(tmp_path / "a.png")) > 3  # it did move


def test_same_job_same_bytes(blend4: Path, render: Any) -> None:
    again = render(prompt="a blend", duration=4, first_frame="first", last_frame="last", seed=3,
                   label="blend")
    assert again.read_bytes() == blend4.read_bytes()


def test_portrait_starts_on_its_picture(render: Any, inputs: dict[str, Path]) -> None:
    clip = render(prompt="tall", duration=4, aspect_ratio="9:16", first_frame="tall", audio=False)
    _check_clip(clip, 4, (720, 1280))
    media.extract_frame(clip, "first", clip.with_suffix(".png"))
    assert _mad(_rgb(clip.with_suffix(".png")), _rgb(inputs["tall"])) < 3


def test_1080p_letterboxes_a_square_picture(render: Any) -> None:
    # 1080p needs 8 s on Veo; the planner enforces that, so 4 s keeps this test quick.
    clip = render(prompt="square", duration=4, resolution="1080p", first_frame="square")
    _check_clip(clip, 4, (1920, 1080))
    media.extract_frame(clip, "first", clip.with_suffix(".png"))
    first = _rgb(clip.with_suffix(".png"))
    assert first[:, :400].max() < 24 and first[:, -400:].max() < 24  # black bars
    assert first[:, 500:1400].mean() > 60


def test_extension_is_the_source_then_seven_seconds(
    blend4: Path, render: Any, tmp_path: Path
) -> None:
    clip = render(prompt="and then", extends="src", duration=8, seed=5, label="more",
                  extra={"src": blend4})
    src = media.probe(blend4).frames
    _check_clip(clip, (src + 168) / 24, (1280, 720))

    def frame(path: Path, at: Any) -> np.ndarray:
        dest = tmp_path / f"{path.name}-{at}.png"
        media.extract_frame(path, at, dest)
        return _rgb(dest)

    source_last = frame(blend4, "last")
    assert _mad(frame(clip, "first"), frame(blend4, "first")) < 1.5
    assert _mad(frame(clip, (src - 1) / 24), source_last) < 1.5
    # The new part continues from the source's last frame: one frame of push-in later.
    assert _mad(frame(clip, src / 24), source_last) < 6
    assert _mad(frame(clip, "last"), source_last) > 6


def test_filter_value_survives_hostile_paths(tmp_path: Path) -> None:
    folder = tmp_path / "it's [a]; b,c: d\\e"
    folder.mkdir()
    text = folder / "t.txt"
    text.write_text("ok")
    font = Path(__file__).parents[1] / "storyboard" / "fonts" / "DejaVuSans.ttf"
    media.run_ffmpeg([
        "-f", "lavfi", "-i", "color=s=64x64:d=0.1",
        "-vf", f"drawtext=fontfile={filter_value(str(font))}:textfile={filter_value(str(text))}",
        "-f", "null", "-",
    ])  # fmt: skip


def test_caption_lines_wrap_and_truncate() -> None:
    assert caption_lines("one two three", 40) == ["one two three"]
    lines = caption_lines("word " * 100, 20)
    assert len(lines) == 3 and lines[-1].endswith("…") and all(len(x) <= 20 for x in lines)


@pytest.mark.parametrize("returns", [False, True])
def test_camera_starts_still_and_returns_when_asked(returns: bool) -> None:
    runs = camera_runs(look_for(1), 1280, 192, returns)
    starts = [start for _, start in runs]
    assert runs[0] == (0, 0) and starts == sorted(set(starts))
    assert max(level for level, _ in runs) > 10
    if returns:
        assert runs[-1] == (0, 191)


def test_seed_chooses_the_look() -> None:
    assert look_for(None) == look_for(0) == look_for(0)
    assert look_for(1) != look_for(2)


def test_frames_handed_off_at_any_time_carry_no_overlay(render: Any, tmp_path: Path) -> None:
    # Two shots alike but for what the animatic draws on top: the same seed, the same picture.
    shots = [
        render(prompt="A storm over the cliff, rain lashing the glass", label="arrival",
               references=("ref", "ref"), duration=4, first_frame="first", seed=7, audio=False),
        render(prompt="Something else entirely", label="zz", duration=4, first_frame="first",
               seed=7, audio=False),
    ]
    shown = [_frames(clip)[60] for clip in shots]
    corner = (slice(0, 200), slice(0, 400))
    assert _mad(shown[0][corner], shown[1][corner]) > 5  # the overlays are on screen at 2.5 s
    for at in (2.5, 1.0, "first", "last"):
        handed = []
        for i, clip in enumerate(shots):
            media.extract_frame(clip, at, tmp_path / f"{i}-{at}.png")
            handed.append(_rgb(tmp_path / f"{i}-{at}.png"))
        assert np.array_equal(handed[0], handed[1]), at
    # The clean plate is the shown clip but for the overlays; the ends are the very same pixels.
    with av.open(str(shots[0])) as container:
        plate = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[1])]
    shown_all = _frames(shots[0])
    assert len(plate) == len(shown_all) == 96
    assert np.array_equal(plate[0], shown_all[0]) and np.array_equal(plate[-1], shown_all[-1])
    assert _mad(plate[60][corner], shown_all[60][corner]) > 5
    middle = (slice(250, 450), slice(400, 880))  # clear of every overlay
    assert _mad(plate[60][middle], shown_all[60][middle]) < 1


def test_extension_hands_off_the_clean_plate_of_its_source(refs6: Path, render: Any, tmp_path: Path) -> None:
    clip = render(prompt="and then", extends="src", duration=8, seed=5, label="more",
                  extra={"src": refs6})
    src = media.probe(refs6).frames
    for path, at in ((refs6, 3.0), (clip, 3.0)):
        media.extract_frame(path, at, tmp_path / f"{path.name}.png")
    source, extended = (_rgb(tmp_path / f"{p.name}.png") for p in (refs6, clip))
    assert _mad(source, extended) < 1.5
    shown = _frames(clip)
    assert len(shown) == src + 168 and _mad(shown[72], source) > 2  # the source's overlays show


def test_a_board_handing_a_timed_frame_on_is_not_touched_by_the_upstream_caption(write_board) -> None:
    from storyboard.build import build, open_project
    from storyboard.executor import Outcome

    text = """
        [film]
        duration = 4
        seed = 7

        [assets]
        keeper = "assets/keeper.png"

        [[shot]]
        id = "arrival"
        prompt = "PROMPT"
        references = ["keeper"]
        duration = 8

        [[shot]]
        id = "dawn"
        first_frame = { shot = "arrival", frame = 2.5 }
        prompt = "The same cliff at dawn"
        seed = 11
    """
    board = write_board(text.replace("PROMPT", "Aerial shot of a lighthouse at dusk"), keeper=(230, 200, 40))
    first = build(open_project(board))
    assert first.count(Outcome.RENDERED) == 2
    board.write_text(board.read_text().replace("Aerial shot of a lighthouse at dusk", "Waves crash"))
    second = build(open_project(board))
    assert second.shots["arrival"].outcome is Outcome.RENDERED
    assert second.shots["dawn"].outcome is Outcome.CACHED  # the frame it starts on did not change


def test_takes_are_different_candidates(render: Any) -> None:
    takes = {take: render(prompt="a cliff", duration=4, seed=7, take=take, label="cliff")
             for take in (1, 2, 3)}
    assert render(prompt="a cliff", duration=4, seed=7, take=2, label="cliff").read_bytes() == (
        takes[2].read_bytes())
    frames = {take: _frames(clip) for take, clip in takes.items()}
    for a, b in ((1, 2), (2, 3), (1, 3)):
        assert _mad(frames[a][0], frames[b][0]) > 20, (a, b)  # another palette
        assert _mad(frames[a][-1], frames[b][-1]) > 20
    # On the same first picture, the takes still move the camera differently.
    moved = [render(prompt="a cliff", duration=4, seed=7, take=t, first_frame="first", audio=False)
             for t in (1, 2)]
    ends = [_frames(clip) for clip in moved]
    assert np.array_equal(ends[0][0], ends[1][0])
    assert _mad(ends[0][-1], ends[1][-1]) > 6


def test_take_chooses_the_look_and_take_1_is_the_seeds_own() -> None:
    assert look_for(7, 1) == look_for(7)
    looks = [look_for(7, take) for take in range(1, 6)]
    assert len({look.colors for look in looks}) == 5
    assert len({(look.zoom, look.focus) for look in looks}) == 5
    assert look_for(7, 2) == look_for(7, 2)
