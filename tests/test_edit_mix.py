"""The sound mix, checked on the decoded PCM: placement, fades, gain, ducking, loudness, bytes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from storyboard.edit.conform import Profile
from storyboard.edit.mix import mix_sound
from storyboard.edit.stitch import _ffmpeg
from storyboard.edit.timeline import ClipPiece, Sound, Timeline
from storyboard.errors import StitchError
from storyboard.media import ffmpeg_exe, run_ffmpeg

PROFILE = Profile(width=320, height=180)
RATE = PROFILE.sample_rate
FILM_SECONDS = 6.0
MUSIC_AMPLITUDE = 0.2
MUSIC_RMS_DB = 20 * np.log10(MUSIC_AMPLITUDE / np.sqrt(2))


def _timeline(*sounds: Sound, loudness: float | None = None) -> Timeline:
    piece = ClipPiece(shot="a", sha="0" * 64, path=Path("a.mp4"), in_=0.0, out=FILM_SECONDS)
    return Timeline((piece,), (), sounds=sounds, loudness=loudness)


def _write_pcm(path: Path, left_right: np.ndarray) -> Path:
    path.write_bytes(np.clip(np.round(left_right * 32767), -32768, 32767).astype("<i2").tobytes())
    return path


def _read_pcm(path: Path) -> np.ndarray:
    """Interleaved s16le stereo as floats, shape (samples, 2)."""
    return np.frombuffer(path.read_bytes(), dtype="<i2").reshape(-1, 2).astype(np.float64) / 32768


def _rms_db(samples: np.ndarray) -> float:
    return 20 * np.log10(max(float(np.sqrt(np.mean(samples ** 2))), 1e-12))


def _span(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    return audio[int(start * RATE):int(end * RATE)]


def _tone(seconds: float, frequency: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = amplitude * np.sin(2 * np.pi * frequency * t)
    return np.stack([wave, wave], axis=1)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A silent film, a film whose own sound is loud for 3 s then silent, and a music file per format."""
    root = tmp_path_factory.mktemp("mix")
    samples = int(FILM_SECONDS * RATE)
    files = {"silent": _write_pcm(root / "silent.pcm", np.zeros((samples, 2)))}
    talk = np.zeros((samples, 2))
    talk[: 3 * RATE] = _tone(3.0, 220.0, 0.4)
    files["talk"] = _write_pcm(root / "talk.pcm", talk)
    music = _write_pcm(root / "music.pcm", _tone(8.0, 660.0, MUSIC_AMPLITUDE))
    for ext, codec in (("wav", "pcm_s16le"), ("mp3", "libmp3lame"), ("m4a", "aac"), ("flac", "flac")):
        files[ext] = root / f"music.{ext}"
        run_ffmpeg(["-y", "-f", "s16le", "-ar", str(RATE), "-ac", "2", "-i", str(music), "-ar", "44100",
                    "-c:a", codec, str(files[ext])])
    return files


def _mix(media_pcm: Path, tmp_path: Path, *sounds: Sound, loudness: float | None = None) -> np.ndarray:
    work = tmp_path / f"work{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    out = mix_sound(media_pcm, _timeline(*sounds, loudness=loudness), profile=PROFILE, work=work, run=_ffmpeg)
    assert out.stat().st_size == media_pcm.stat().st_size
    return _read_pcm(out)


@pytest.mark.parametrize("ext", ["wav", "mp3", "m4a", "flac"])
def test_music_plays_where_placed_and_nowhere_else(media, tmp_path, ext):
    sound = Sound(path=media[ext], sha="x", start=1.5, in_=2.0, out=5.0)
    audio = _mix(media["silent"], tmp_path, sound)
    assert np.abs(_span(audio, 0.0, 1.49)).max() == 0.0
    assert _rms_db(_span(audio, 1.6, 4.4)) == pytest.approx(MUSIC_RMS_DB, abs=0.5)
    assert np.abs(_span(audio, 4.51, FILM_SECONDS)).max() == 0.0
    first = int(np.flatnonzero(np.abs(audio[:, 0]) > 1e-3)[0])
    assert abs(first - 1.5 * RATE) <= 0.002 * RATE


def test_a_mono_file_plays_in_both_channels_at_equal_power(media, tmp_path):
    mono = tmp_path / "voice.wav"
    run_ffmpeg(["-y", "-i", str(media["wav"]), "-af", "pan=mono|c0=c0", str(mono)])
    audio = _mix(media["silent"], tmp_path, Sound(path=mono, sha="x"))
    left, right = _span(audio, 1, 5)[:, 0], _span(audio, 1, 5)[:, 1]
    assert np.array_equal(left, right)
    assert _rms_db(left) == pytest.approx(MUSIC_RMS_DB - 3.01, abs=0.1)


def test_fade_in_ramps_up_and_fade_out_down(media, tmp_path):
    sound = Sound(path=media["wav"], sha="x", start=1.0, out=4.0, fade_in=1.0, fade_out=1.0)
    audio = _mix(media["silent"], tmp_path, sound)
    rising = [_rms_db(_span(audio, 1.0 + t, 1.1 + t)) for t in np.arange(0.0, 1.0, 0.1)]
    falling = [_rms_db(_span(audio, 4.0 + t, 4.1 + t)) for t in np.arange(0.0, 1.0, 0.1)]
    assert all(b > a for a, b in zip(rising, rising[1:]))
    assert all(b < a for a, b in zip(falling, falling[1:]))
    steady = _rms_db(_span(audio, 2.5, 3.5))
    assert rising[0] < steady - 15 and rising[-1] == pytest.approx(steady, abs=1.0)


def test_gain_scales_the_sound(media, tmp_path):
    plain = _mix(media["silent"], tmp_path, Sound(path=media["flac"], sha="x"))
    quieter = _mix(media["silent"], tmp_path, Sound(path=media["flac"], sha="x", gain_db=-6.0))
    assert _rms_db(_span(quieter, 1, 5)) - _rms_db(_span(plain, 1, 5)) == pytest.approx(-6.0, abs=0.1)


def test_music_ducks_under_loud_clip_sound_only(media, tmp_path):
    own = _read_pcm(media["talk"])
    ducked = _mix(media["talk"], tmp_path, Sound(path=media["wav"], sha="x", duck=True)) - own
    level = {"talk": _rms_db(_span(ducked, 0.5, 2.9)), "quiet": _rms_db(_span(ducked, 4.0, 5.9))}
    assert level["quiet"] - level["talk"] >= 6.0, level
    plain = _mix(media["talk"], tmp_path, Sound(path=media["wav"], sha="x")) - own
    assert abs(_rms_db(_span(plain, 0.5, 2.9)) - _rms_db(_span(plain, 4.0, 5.9))) < 0.5
    assert level["quiet"] == pytest.approx(_rms_db(_span(plain, 4.0, 5.9)), abs=0.5)


def test_a_quiet_bed_does_not_duck(media, tmp_path):
    bed = _write_pcm(tmp_path / "bed.pcm", _tone(FILM_SECONDS, 220.0, 0.02))  # -37 dBFS RMS
    own = _read_pcm(bed)
    ducked = _mix(bed, tmp_path, Sound(path=media["wav"], sha="x", duck=True)) - own
    assert _rms_db(_span(ducked, 0.5, 5.5)) == pytest.approx(MUSIC_RMS_DB, abs=0.2)


def _ebur128(pcm: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP), measured by ffmpeg's meter."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostats", "-f", "s16le", "-ar", str(RATE), "-ac", "2",
                           "-i", str(pcm), "-af", "ebur128=peak=true", "-f", "null", "-"],
                          capture_output=True, text=True, check=True)
    summary = proc.stderr[proc.stderr.rindex("Summary:"):]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary)[1])
    peak = float(re.search(r"True peak:\s+Peak:\s+(-?[\d.]+) dBFS", summary)[1])
    return integrated, peak


@pytest.mark.parametrize("target", [-14.0, -23.0])
def test_loudness_reaches_the_target_under_the_true_peak_ceiling(media, tmp_path, target):
    work = tmp_path / "work"
    work.mkdir()
    timeline = _timeline(Sound(path=media["mp3"], sha="x", duck=True, fade_out=1.0), loudness=target)
    before = _ebur128(media["talk"])
    out = mix_sound(media["talk"], timeline, profile=PROFILE, work=work, run=_ffmpeg)
    integrated, peak = _ebur128(out)
    assert abs(before[0] - target) > 3  # the input was not there already
    assert abs(integrated - target) <= 1.0
    assert peak <= -1.0
    assert out.stat().st_size == media["talk"].stat().st_size


def test_loudness_of_peaky_sound_is_limited(tmp_path):
    """Clicks over a quiet tone: the gain to -10 LUFS would push the peaks far above 0 dBTP."""
    audio = _tone(FILM_SECONDS, 150.0, 0.05)
    audio[:: RATE // 4] = 0.9
    film = _write_pcm(tmp_path / "peaky.pcm", audio)
    work = tmp_path / "work"
    work.mkdir()
    out = mix_sound(film, _timeline(loudness=-10.0), profile=PROFILE, work=work, run=_ffmpeg)
    integrated, peak = _ebur128(out)
    assert abs(integrated + 10.0) <= 1.0 and peak <= -1.0


def test_nothing_to_mix_returns_the_input_untouched(media, tmp_path):
    calls = []
    before = media["talk"].read_bytes()
    out = mix_sound(media["talk"], _timeline(), profile=PROFILE, work=tmp_path,
                    run=lambda argv, step: calls.append(step))
    assert out == media["talk"] and out.read_bytes() == before and calls == []


def test_the_same_inputs_give_the_same_bytes(media, tmp_path):
    timeline = _timeline(Sound(path=media["m4a"], sha="x", start=0.5, duck=True, fade_in=0.5, gain_db=-3.0),
                         Sound(path=media["flac"], sha="y", start=2.0, in_=1.0, out=3.0), loudness=-16.0)
    outs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        outs.append(mix_sound(media["talk"], timeline, profile=PROFILE, work=tmp_path / name, run=_ffmpeg))
    assert outs[0] != outs[1] and outs[0].read_bytes() == outs[1].read_bytes()


def test_a_sound_that_does_not_decode_is_named(media, tmp_path):
    bad = tmp_path / "score.mp3"
    bad.write_bytes(b"not audio at all" * 100)
    with pytest.raises(StitchError, match="score.mp3"):
        mix_sound(media["silent"], _timeline(Sound(path=bad, sha="x")), profile=PROFILE, work=tmp_path,
                  run=_ffmpeg)
