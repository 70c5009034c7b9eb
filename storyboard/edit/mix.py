"""The sound mix: music and voice-over placed on the film, ducked under the clips, made loud enough.

The stitcher joins the clips' own sound into one raw PCM file (``stitch.build_pcm_command``:
signed 16-bit, interleaved, the profile's rate and channels). ``mix_sound`` decodes each ``Sound``
of the timeline with ffmpeg (trimmed, gained, faded), places it at its start to the sample, and
sums, then normalises the sum::

    film's own sound ───────────────────────────────────────┬─────────── + ── loudness ── PCM
                                                            └ key ─┐    │
    sound (duck) ── decode: trim, gain, fades ── place ── × duck gain ──┤
    sound ───────── decode: trim, gain, fades ── place ─────────────────┘

Ducking lowers the music, never the clips: a gain computed from the film's own sound (the key),
``DUCK_DB`` down wherever the clips are loud, following them with a short attack and a slow
release. Loudness is measured with ffmpeg's EBU R128 meter (``ebur128``), corrected by one gain,
and held under ``TRUE_PEAK_CEILING`` by a limiter running at four times the rate (so it catches
the peaks between samples); the result is measured again and the gain trimmed until the
integrated loudness is within ``LOUDNESS_TOLERANCE`` of the target. Each ffmpeg command reads
one input and everything is decided from the inputs' bytes, so the same inputs give the same PCM.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.edit.conform import Profile
from storyboard.edit.timeline import Sound, Timeline
from storyboard.errors import MediaError, StitchError
from storyboard.media import ffmpeg_exe

__all__ = ["Loudness", "build_sound_command", "duck_gain", "measure_loudness", "mix_sound", "sound_seconds"]

DUCK_THRESHOLD_DB = -30.0
"""The clips' own level (dBFS, RMS of the loudest channel) above which the music is lowered:
above the animatic's quiet bed (-36), below speech (about -20)."""
DUCK_KNEE_DB = 6.0
"""How far above the threshold the clips' sound must be for the full ``DUCK_DB``."""
DUCK_DB = 12.0
"""How much the ducked sounds drop under loud clip sound."""
DUCK_ATTACK_MS = 20.0
DUCK_RELEASE_MS = 300.0

TRUE_PEAK_CEILING = -1.0
"""dBTP the mix never exceeds once normalised (EBU R128 / streaming platforms)."""
LIMIT_AT = -1.5
"""dBTP the limiter aims at: below the ceiling by what resampling back may add between samples."""
LOUDNESS_TOLERANCE = 0.5
"""LU from the target the gain is trimmed to (the promise to the user is 1 LU)."""
SILENCE = -70.0
"""LUFS at or below which ebur128 reports silence: there is nothing to normalise."""
_PASSES = 4
RunFn = Callable[[list[str], str], None]


@dataclass(frozen=True)
class Loudness:
    """An EBU R128 measurement: integrated loudness (LUFS) and true peak (dBTP)."""

    integrated: float
    true_peak: float


def mix_sound(film_pcm: Path, timeline: Timeline, *, profile: Profile, work: Path, run: RunFn) -> Path:
    """The film's sound with the timeline's music and voice-over mixed in and loudness set.

    Args:
        film_pcm: the film's own sound, raw interleaved s16le at the profile's rate and
            channels, covering the whole film (as ``stitch.build_pcm_command`` writes it).
        timeline: its ``sounds`` are placed, its ``loudness`` (LUFS, or None) is the target.
        profile: the film's sample rate and channels.
        work: a folder for intermediate files (the result is written there too).
        run: runs one ffmpeg command (arguments after the binary, a description of the step),
            raising on failure; the stitcher passes its own. The loudness meter runs ffmpeg
            itself (``measure_loudness``), since it reads the meter's summary on stderr.

    Returns:
        ``film_pcm`` itself when there is nothing to mix or normalise, else a new raw PCM file
        of the same format and sample count.

    Raises:
        StitchError: a sound file does not decode, or ffmpeg failed.
    """
    if not timeline.sounds and timeline.loudness is None:
        return film_pcm
    total = film_pcm.stat().st_size // (2 * profile.channels)
    placed = [(sound, _length(sound, profile, total)) for sound in timeline.sounds]
    placed = [(sound, used) for sound, used in placed if used > 0]
    mixed, sample_format = film_pcm, "s16le"
    if placed:
        sample_format = "f32le" if timeline.loudness is not None else "s16le"
        mixed = work / ("mix.f32" if sample_format == "f32le" else "mix.pcm")
        _mix(film_pcm, placed, mixed, sample_format, profile=profile, total=total, work=work, run=run)
    if timeline.loudness is None:
        return mixed
    return _normalise(mixed, sample_format, timeline.loudness, work / "loud.pcm",
                      profile=profile, total=total, run=run)


def _mix(film_pcm: Path, placed: Sequence[tuple[Sound, int]], out: Path, sample_format: str, *,
         profile: Profile, total: int, work: Path, run: RunFn) -> None:
    """Sum the film's own sound and each placed sound (the ducked ones lowered) into raw ``out``.

    Each sound is decoded by ffmpeg on its own (one input per command: a graph joining several
    inputs may drop a few samples at their end, depending on thread timing), then the sum is
    made here, where every sample's place is exact.
    """
    import numpy as np  # only the mix needs it

    channels, rate = profile.channels, profile.sample_rate
    own = np.fromfile(film_pcm, dtype="<i2")[: total * channels].reshape(total, channels)
    mix = own.astype(np.float32) / 32768
    ducked = np.zeros_like(mix) if any(sound.duck for sound, _ in placed) else None
    for index, (sound, used) in enumerate(placed):
        decoded = work / f"sound{index}.f32"
        run(build_sound_command(sound, used, decoded, profile),
            f"decoding sound {index + 1}/{len(placed)} ({Path(sound.path).name})")
        samples = np.fromfile(decoded, dtype="<f4")[: used * channels].reshape(-1, channels)
        start = _samples(sound.start, rate)
        target = ducked if sound.duck and ducked is not None else mix
        target[start:start + len(samples)] += samples
        decoded.unlink()
    if ducked is not None:
        mix += ducked * duck_gain(own, rate)[:, None]
    if sample_format == "f32le":
        mix.astype("<f4").tofile(out)
    else:
        np.clip(np.rint(mix * 32768), -32768, 32767).astype("<i2").tofile(out)


def duck_gain(own: Any, rate: int) -> Any:
    """Per-sample gain (linear) for the ducked sounds: down ``DUCK_DB`` where ``own`` is loud.

    ``own`` is the film's own sound (int16 samples, one column per channel). Its loudest
    channel's level is taken over blocks of 10 ms and mapped to a reduction growing from 0 at
    ``DUCK_THRESHOLD_DB`` to ``DUCK_DB`` a ``DUCK_KNEE_DB`` above it; the reduction follows with
    ``DUCK_ATTACK_MS`` going down and ``DUCK_RELEASE_MS`` coming back, and moves linearly
    through each block, from the mean of it and the block before to that of it and the next.
    """
    import numpy as np  # only the mix needs it

    block = max(1, rate // 100)
    total = len(own)
    count = -(-total // block)
    power = np.empty(count)
    step = 4096  # blocks measured at once: memory stays small on a long film
    for first in range(0, count, step):
        part = own[first * block:(first + step) * block].astype(np.float64) / 32768
        blocks = -(-len(part) // block)
        padded = np.zeros((blocks * block, own.shape[1]))
        padded[:len(part)] = part
        power[first:first + blocks] = (padded.reshape(blocks, block, -1) ** 2).mean(axis=1).max(axis=1)
    level_db = 10 * np.log10(np.maximum(power, 1e-12))
    wanted = DUCK_DB * np.clip((level_db - DUCK_THRESHOLD_DB) / DUCK_KNEE_DB, 0.0, 1.0)
    down = 1 - math.exp(-block / rate / (DUCK_ATTACK_MS / 1000))
    back = 1 - math.exp(-block / rate / (DUCK_RELEASE_MS / 1000))
    reduction, now = np.empty(count), 0.0
    for index, value in enumerate(wanted.tolist()):
        now += (value - now) * (down if value > now else back)
        reduction[index] = now
    gain = 10 ** (-reduction / 20)
    edges = np.concatenate([gain[:1], (gain[:-1] + gain[1:]) / 2, gain[-1:]])  # between blocks
    ramp = ((np.arange(block) + 0.5) / block).astype(np.float32)
    ramps = edges[:-1, None].astype(np.float32) * (1 - ramp) + edges[1:, None].astype(np.float32) * ramp
    return ramps.reshape(-1)[:total]


def build_sound_command(sound: Sound, used: int, out: Path, profile: Profile) -> list[str]:
    """ffmpeg arguments that decode ``used`` samples of ``sound`` (trimmed, gained, faded) to raw f32."""
    rate = profile.sample_rate
    first = _samples(sound.in_, rate)
    chain = [f"aresample={rate}",
             f"aformat=sample_fmts=fltp:sample_rates={rate}:channel_layouts={profile.channel_layout}",
             f"atrim=start_sample={first}:end_sample={first + used}", "asetpts=N/SR/TB"]
    if sound.gain_db:
        chain.append(f"volume={sound.gain_db:.6g}dB:precision=double")
    fade_in = min(_samples(sound.fade_in, rate), used)
    if fade_in:
        chain.append(f"afade=t=in:start_sample=0:nb_samples={fade_in}")
    fade_out = min(_samples(sound.fade_out, rate), used)
    if fade_out:
        chain.append(f"afade=t=out:start_sample={used - fade_out}:nb_samples={fade_out}")
    chain += [f"apad=whole_len={used}", f"atrim=end_sample={used}"]
    return ["-y", "-vn", "-sn", "-dn", "-i", f"file:{Path(sound.path).resolve()}", "-af", ",".join(chain),
            "-c:a", "pcm_f32le", "-ar", str(rate), "-ac", str(profile.channels), "-f", "f32le", str(out)]


def _length(sound: Sound, profile: Profile, total: int) -> int:
    """Samples of ``sound`` the film plays: its ``[in, out)`` range, cut at the film's end."""
    rate = profile.sample_rate
    end = sound.out if sound.out is not None else sound_seconds(Path(sound.path))
    wanted = _samples(end, rate) - _samples(sound.in_, rate)
    return max(0, min(wanted, total - _samples(sound.start, rate)))


def _samples(seconds: float, rate: int) -> int:
    return int(round(seconds * rate))


def sound_seconds(path: Path) -> float:
    """The length of the audio file ``path`` in seconds, as its container states it (else decoded).

    Raises:
        StitchError: the file is missing, has no sound or does not decode (names the file).
    """
    import av  # slow to import; only the mix needs it

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise StitchError(f"sound {path}: the file has no audio stream")
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000
            samples = sum(frame.samples for frame in container.decode(stream))
            return samples / (stream.rate or 1)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise StitchError(f"sound {path}: cannot decode it as audio (WAV, MP3, AAC/M4A or FLAC): "
                          f"{exc}") from exc


def _normalise(mixed: Path, sample_format: str, target: float, out: Path, *, profile: Profile,
               total: int, run: RunFn) -> Path:
    """``mixed`` at ``target`` LUFS with its true peak at most ``TRUE_PEAK_CEILING``, as s16le."""
    measured = measure_loudness(mixed, profile, sample_format)
    if measured.integrated <= SILENCE:
        run(_render_command(mixed, sample_format, out, profile, total, gain=0.0, limit=False),
            "writing the film's (silent) sound")
        return out
    gain = target - measured.integrated
    limit = measured.true_peak + gain > LIMIT_AT
    for attempt in range(_PASSES):
        run(_render_command(mixed, sample_format, out, profile, total, gain=gain, limit=limit),
            f"setting the film's loudness to {target:g} LUFS (pass {attempt + 1})")
        result = measure_loudness(out, profile)
        if abs(result.integrated - target) <= LOUDNESS_TOLERANCE and result.true_peak <= TRUE_PEAK_CEILING:
            break
        if result.true_peak > TRUE_PEAK_CEILING:
            limit = True
        gain += target - result.integrated
    return out


def _render_command(mixed: Path, sample_format: str, out: Path, profile: Profile, total: int, *,
                    gain: float, limit: bool) -> list[str]:
    """ffmpeg arguments applying ``gain`` dB (then the true-peak limiter) and writing s16le."""
    rate = profile.sample_rate
    chain = [f"volume={gain:.6f}dB:precision=double"]
    if limit:
        chain += [f"aresample={4 * rate}",
                  f"alimiter=limit={10 ** (LIMIT_AT / 20):.6f}:attack=1:release=50:level=false:latency=true",
                  f"aresample={rate}"]
    chain += [f"apad=whole_len={total}", f"atrim=end_sample={total}"]
    return ["-y", *_raw_input(mixed, profile, sample_format), "-af", ",".join(chain),
            "-c:a", "pcm_s16le", "-ar", str(rate), "-ac", str(profile.channels), "-f", "s16le", str(out)]


def _raw_input(path: Path, profile: Profile, sample_format: str) -> list[str]:
    return ["-f", sample_format, "-ar", str(profile.sample_rate), "-ac", str(profile.channels),
            "-i", f"file:{Path(path).resolve()}"]


_SUMMARY = re.compile(r"Summary:.*?I:\s*(-?[\d.]+|-inf)\s*LUFS.*?True peak:\s*Peak:\s*(-?[\d.]+|-inf)\s*dBFS",
                      re.S)


def measure_loudness(pcm: Path, profile: Profile, sample_format: str = "s16le") -> Loudness:
    """The integrated loudness and true peak of a raw PCM file, by ffmpeg's ``ebur128`` meter.

    Raises:
        StitchError: ffmpeg could not run or printed no summary.
    """
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
            *_raw_input(pcm, profile, sample_format), "-af", "ebur128=peak=true:framelog=quiet",
            "-f", "null", "-"]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=600)
    except (OSError, subprocess.SubprocessError, MediaError) as exc:
        raise StitchError(f"stitch: measuring the film's loudness failed: {exc}") from exc
    text = proc.stderr.decode("utf-8", "replace")
    found = _SUMMARY.search(text)
    if proc.returncode != 0 or found is None:
        tail = "\n".join(text.strip().splitlines()[-10:])
        raise StitchError(f"stitch: measuring the film's loudness failed:\n{tail}")
    return Loudness(*(float(value) if value != "-inf" else -math.inf for value in found.groups()))

