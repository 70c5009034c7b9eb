"""RenderJob, the fully resolved request for one shot, and what a provider needs to run it.

A RenderJob is to a shot what a command line is to a build step: everything that shapes the
pixels, with every input named by the sha256 of its bytes. Its canonical JSON is the cache key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Protocol

Resolution = Literal["360p", "720p", "1080p", "4k"]
AspectRatio = Literal["16:9", "9:16"]

SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("360p", "16:9"): (640, 360),
    ("360p", "9:16"): (360, 640),
    ("720p", "16:9"): (1280, 720),
    ("720p", "9:16"): (720, 1280),
    ("1080p", "16:9"): (1920, 1080),
    ("1080p", "9:16"): (1080, 1920),
    ("4k", "16:9"): (3840, 2160),
    ("4k", "9:16"): (2160, 3840),
}
FPS = 24
EXTENSION_SECONDS = 7
"""What an extension adds to its source clip (Veo 3.1's rule); a shot that extends says no other length."""
EXTENSION_JOB_DURATION = 8
"""The `duration` an extension's RenderJob carries. Veo's rules had every extension say 8 before its length
followed the +7 s rule; keeping 8 in the job keeps those cache keys, so no extension is paid for twice."""


UNKEYED_OPTIONS = frozenset({"storage_uri"})
"""Options that say where a clip is delivered, not what it looks like: Vertex's `storage_uri` makes it
write the video into a bucket instead of answering with its bytes, the same pixels either way. In the
key, moving the output to another bucket would pay again for clips the cache already holds."""


def job_duration(duration: int, extends: bool) -> int:
    """The `duration` a shot's RenderJob carries: its own, or EXTENSION_JOB_DURATION for an extension."""
    return EXTENSION_JOB_DURATION if extends else duration


def frame_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Pixel size (width, height) of a Veo output."""
    return SIZES[(resolution, aspect_ratio)]


@dataclass(frozen=True, kw_only=True)
class RenderJob:
    """One shot, resolved: provider, model, parameters and input digests. Hashes to its key.

    A plain frozen dataclass, not validated: every value comes from a shot validated at load. Its key
    material is `key_components(job)`, the dict pydantic's `model_dump(mode="json")` made when this
    was a pydantic model (importing pydantic and building its models were a plan's largest cost)."""

    provider: str
    model: str
    prompt: str
    negative_prompt: str | None = None
    duration: int | float = 8
    """Seconds; whole for Veo, fractional where a model allows it (Omni). An edit's is its source's length."""
    resolution: Resolution = "720p"
    aspect_ratio: AspectRatio = "16:9"
    seed: int | None = None
    audio: bool = True
    take: int = 1
    first_frame: str | None = None
    last_frame: str | None = None
    references: tuple[str, ...] = ()
    extends: str | None = None
    edits: str | None = None
    """sha256 of the clip this job edits (another shot's or an MP4 asset): its bytes are in the key."""
    options: tuple[tuple[str, str | int | float | bool], ...] = ()
    """The provider's own options that apply to this shot (its `[providers.NAME]` settings under the
    shot's `options`), sorted by name. Those that shape the clip are in the key; UNKEYED_OPTIONS are not."""
    label: str = ""
    """The shot id, only for providers that draw it into the clip (the animatic)."""
    candidate: int = 1
    """Which of the shot's `takes` this job makes (storyboard.takes); 1 keys as every job did before."""
    batch: int = 0
    """How many times `build --force` asked for the shot anew; 0 keys as every job did before."""

    @property
    def output_seconds(self) -> float:
        """Length of the returned clip: an extension returns source + 7 s, measured later."""
        return float(self.duration)


_FIELDS = tuple(f.name for f in fields(RenderJob))
_TEXT, _OPTIONAL_TEXT, _OPTIONAL_INT = (str,), (str, type(None)), (int, type(None))
_PLAIN_TYPES = {"provider": _TEXT, "model": _TEXT, "prompt": _TEXT, "negative_prompt": _OPTIONAL_TEXT,
                "duration": (int, float), "resolution": _TEXT, "aspect_ratio": _TEXT, "seed": _OPTIONAL_INT,
                "audio": (bool,), "take": (int,), "first_frame": _OPTIONAL_TEXT, "last_frame": _OPTIONAL_TEXT,
                "extends": _OPTIONAL_TEXT, "edits": _OPTIONAL_TEXT, "label": _TEXT, "candidate": (int,),
                "batch": (int,)}
"""Each scalar field and the exact types of its value when made from a validated shot (the fast way)."""
_NUMBERS = frozenset({"duration", "seed", "take", "candidate", "batch"})


def key_components(job: RenderJob) -> dict[str, Any]:
    """The dict the job's cache key hashes: what pydantic's ``model_dump(mode="json")`` made of it
    (keys of every cached clip were made that way), without pydantic. Plain values are taken as
    they are; any other goes the way pydantic's JSON mode took it (`_json_value`)."""
    values = job.__dict__
    refs, options = values["references"], values["options"]
    if (all(type(values[name]) in types for name, types in _PLAIN_TYPES.items())
            and type(refs) is tuple and all(type(r) is str for r in refs)
            and type(options) is tuple and all(type(o) is tuple and len(o) == 2 and type(o[0]) is str
                                               and type(o[1]) in (str, int, float, bool) for o in options)
            and all(type(v) is not float or math.isfinite(v)
                    for v in (values["duration"], *(o[1] for o in options)))):
        data = {name: values[name] for name in _FIELDS}
        data["references"] = list(refs)
        keyed = {name: value for name, value in options if name not in UNKEYED_OPTIONS}
    else:
        data = {name: _field_value(name, values[name]) for name in _FIELDS}
        keyed = {_json_key(name): _json_value(value) for name, value in options if name not in UNKEYED_OPTIONS}
    # `edits`, `candidate`, `batch` and `options` are left out at their defaults (UNKEYED_OPTIONS are
    # not options that shape the clip), so the keys of every job made before they existed stay the same
    del data["options"]
    if keyed:
        data["options"] = keyed
    if data["edits"] is None:
        del data["edits"]
    if data["candidate"] == 1:
        del data["candidate"]
    if data["batch"] == 0:
        del data["batch"]
    return data


def _field_value(name: str, value: Any) -> Any:
    """A field's value as pydantic's JSON mode wrote it: its int serializer made a bool a number."""
    if name in _NUMBERS and type(value) is bool:
        return int(value)
    return _json_value(value)


def _json_value(value: Any) -> Any:
    """`value` as pydantic's JSON mode inferred it: non-finite floats null, an enum its value,
    subclasses of str, int and float the plain value, tuples and sets lists."""
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return _json_value(value.value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value) if math.isfinite(value) else None
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {_json_key(k): _json_value(v) for k, v in value.items()}
    raise TypeError(f"a RenderJob holds a {kind.__name__} ({value!r}), which has no JSON form")


def _json_key(key: Any) -> Any:
    """A dict key as pydantic's JSON mode wrote it."""
    value = _json_value(key)
    return value if type(value) is str else json.dumps(value)


@dataclass(frozen=True)
class Capabilities:
    """What a model accepts; checked before anything is paid for."""

    durations: frozenset[int] = frozenset({4, 6, 8})
    resolutions: frozenset[str] = frozenset({"720p", "1080p", "4k"})
    aspect_ratios: frozenset[str] = frozenset({"16:9", "9:16"})
    max_references: int = 3
    first_frame: bool = True
    last_frame: bool = True
    extension: bool = True
    extension_resolutions: frozenset[str] = frozenset({"720p"})
    audio_control: bool = True
    seed: bool = True
    negative_prompt: bool = True
    max_prompt_chars: int = 4000
    fractional_durations: bool = False
    """Any length between the shortest and the longest of `durations` (Omni), not only those listed."""
    longest_for_inputs: bool = True
    """References need the longest duration (Veo 3.1 rule); Omni takes any."""
    edit: bool = False
    """Whether the model turns an existing clip into a new one (`edits`)."""
    extend_footage: bool = False
    """Whether it extends any MP4 (`extends` naming an asset), not only clips it generated."""
    long_duration_only: frozenset[str] = frozenset({"1080p", "4k"})
    """Resolutions that need the longest duration (8 s on Veo 3.1)."""
    max_extended_seconds: int = 148
    local_media: bool = True
    """False when the provider takes only URLs and no upload target is configured."""
    resumable: bool = True
    """False for synchronous APIs: a killed build cannot pick the job up again."""


@dataclass(frozen=True)
class Price:
    """An estimate for one job, in the provider's own unit (USD or credits)."""

    amount: float
    unit: str = "USD"


@dataclass
class RenderResult:
    """What a provider reports beside the clip it wrote."""

    cost: Price | None = None
    operation: str | None = None
    handle: dict[str, Any] | None = None
    """The provider's own reference to the clip (e.g. a Gemini file URI and its expiry)."""


class Journal(Protocol):
    """Durable per-job notes, so an interrupted build resumes instead of paying again."""

    def read(self) -> dict[str, Any] | None: ...

    def write(self, entry: dict[str, Any]) -> None: ...

    def clear(self) -> None: ...


ProgressFn = Callable[[str, float | None], None]
"""progress(state, fraction): state is queued|submitted|rendering|downloading; fraction 0..1 or None."""


@dataclass
class RenderContext:
    """What the executor lends a provider for one job."""

    shot_id: str
    inputs: dict[str, Path]
    """Input digest -> a readable file with those bytes (images, frames, source clips)."""
    journal: Journal
    progress: ProgressFn = lambda state, fraction=None: None
    sleep: Callable[[float], None] = field(default=None)  # type: ignore[assignment]
    clock: Callable[[], float] = field(default=None)  # type: ignore[assignment]
    handles: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Input clip digest -> the provider handle recorded when it was generated (for extension)."""
    settings: Any = None
    """The provider's validated settings table (`[providers.NAME]`)."""
    samples: int = 1
    """Videos asked of one request (Vertex `sampleCount`, Azerion `n`): a batch of a shot's candidates."""
    candidates: tuple[int, ...] = ()
    """The candidate numbers (storyboard.takes) the request asks for, in the order of its videos: the
    journal keeps them, so a resumed request lands every paid video even after `takes` was lowered."""

    def __post_init__(self) -> None:
        import time

        if self.sleep is None:
            self.sleep = time.sleep
        if self.clock is None:
            self.clock = time.monotonic

    def input_path(self, digest: str) -> Path:
        """The file holding the input with this digest."""
        return self.inputs[digest]
