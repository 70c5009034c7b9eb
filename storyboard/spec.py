"""The storyboard file as frozen pydantic models: what the TOML may say, and how an error is worded.

These models are the definition of the file format: `storyboard schema` generates the JSON schema
from them, and pydantic words every problem of a file. They are not on the path of a valid file:
`storyboard.spec_tables` checks that against the generated schema and gives the same values
without importing pydantic (≈ 0.2 s of CPU per command, as much as planning 1,000 cached shots).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from storyboard import sandbox
from storyboard.edit.xfade_names import KINDS as TRANSITION_KINDS
from storyboard.errors import did_you_mean
from storyboard.model import COLOR_PATTERN, MAX_CLIPS, MAX_SECONDS, MAX_SOUNDS, MAX_TEXT_CHARS, MAX_TEXTS, \
    MAX_TITLES, SEED_MAX, film_output_problem
from storyboard.providers import ProviderSettings

Resolution = Literal["360p", "720p", "1080p", "4k"]
AspectRatio = Literal["16:9", "9:16"]
FrameWhich = Literal["first", "last"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class FrameRef(_Strict):
    """A frame of another shot's clip: its first, its last, or the one at `frame` seconds."""

    shot: str = Field(description="id of the shot whose clip holds the frame")
    frame: FrameWhich | Annotated[float, Field(ge=0)] = Field(
        "last", description='"first", "last", or a time in seconds'
    )


ImageRef = Annotated[
    str | FrameRef,
    Field(description="an asset name, a path relative to the storyboard, a URL, or a frame ref"),
]


class AssetTable(_Strict):
    """An asset given as a table: exactly one of `path` or `url`."""

    path: str | None = None
    url: str | None = None


class Film(_Strict):
    """`[film]`: the output and the defaults every shot inherits."""

    title: str = ""
    output: str = Field("build/film.mp4", description="the film's path, relative to this file")
    provider: str = Field("animatic", description="default provider for every shot")
    model: str | None = Field(None, description="default model (else the provider's default)")
    resolution: Resolution = "720p"
    aspect_ratio: AspectRatio = "16:9"
    duration: int | float = Field(8, description="default shot length in seconds: 4, 6 or 8 on Veo (an extension "
                                  "adds 7 s); any length the model allows on omni (3-10 s, 3-15 s on 1.2; fractions too)")
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] | None = None
    negative_prompt: str | None = None
    audio: bool = True

    @field_validator("output")
    @classmethod
    def _inside_and_mp4(cls, value: str) -> str:
        """The film may only be written inside the board's folder, as an .mp4 (never over the board)."""
        if (reason := film_output_problem(value)) is not None:
            raise PydanticCustomError("output_path", f"{reason}; e.g. \"build/film.mp4\"")
        return value


class ShotSpec(_Strict):
    """`[[shot]]` as written; unset values inherit from `[film]`."""

    id: str = Field(description="unique id, lowercase letters, digits, '-' and '_'")
    prompt: str = Field(description="what happens; jinja2 with the [vars] table")
    negative_prompt: str | None = None
    duration: int | float | None = Field(None, description="seconds: 4, 6 or 8 on Veo, 3-15 (fractions too) on omni; "
                                         "omit it on an extension, which adds 7 s")
    resolution: Resolution | None = None
    aspect_ratio: AspectRatio | None = None
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] | None = None
    audio: bool | None = None
    take: Annotated[int, Field(ge=1)] = Field(1, description="bump to ask for another take")
    takes: Annotated[int, Field(ge=1, le=16)] = Field(1, description="candidates to generate (each paid and kept)")
    pick: Annotated[int, Field(ge=1, le=16)] = Field(1, description="the candidate the film and every dependant "
                                                     "use (at most `takes`)")
    provider: str | None = None
    model: str | None = None
    first_frame: ImageRef | None = None
    last_frame: ImageRef | None = None
    continues: str | None = Field(None, description="start on the exact last frame of this shot")
    extends: str | None = Field(None, description="extend this shot's clip (or, on omni, an MP4 asset) by 7 s")
    edits: str | None = Field(None, description="turn this shot's clip, or an MP4 asset, into a new one "
                              "as the prompt says (providers that can edit: omni)")
    references: list[ImageRef] = Field(default_factory=list, description="up to 3 images")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="the provider's own options for this shot, e.g. on vertex "
        "{ person_generation = \"allow_adult\", resize_mode = \"crop\" }; they override [providers.NAME]")


class Transition(_Strict):
    """How two pieces of the film join: every kind but `cut` overlaps them by `duration`."""

    kind: Annotated[str, Field(json_schema_extra={"enum": list(TRANSITION_KINDS)})] = Field(
        "cut", description="cut, crossfade, fade (through black), dip (to `color`), or one of ffmpeg "
        "xfade's transitions (wipeleft, slideup, ...)")
    duration: Annotated[float, Field(le=MAX_SECONDS, allow_inf_nan=False,
                                     description="seconds the two pieces overlap (not for a cut)")] = 0.5
    color: Annotated[str, Field(pattern=COLOR_PATTERN,
                                description='the colour a dip passes through, "#rrggbb"')] = "#000000"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in TRANSITION_KINDS:
            raise PydanticCustomError("transition_kind", f"unknown transition '{_printable(value)}'"
                                      f"{did_you_mean(value, TRANSITION_KINDS)}; use cut, crossfade, fade, dip "
                                      "or one of ffmpeg xfade's (wipeleft, slideup, circleopen, ...)")
        return value


class AudioEdit(_Strict):
    """Film-wide audio treatment."""

    normalize: bool = Field(False, description="EBU R128 loudness normalisation")
    loudness: Annotated[float, Field(ge=-70.0, le=-5.0)] = Field(
        -14.0, description="integrated loudness target in LUFS when normalizing (true peak <= -1 dBTP)")


Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
Name = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
"""A shot id, asset name or path named by the edit (bounded: it is compared for did-you-mean)."""


class EditClip(_Strict):
    """`[[edit.clip]]`: one shot's clip on the timeline, trimmed, with its own sound level and join."""

    shot: Name = Field(description="the shot whose clip plays")
    in_: Seconds = Field(0.0, alias="in", description="seconds into the shot's clip where it starts")
    out: Seconds | None = Field(None, description="seconds into the clip where it ends; default its end")
    volume: Annotated[float, Field(ge=0, le=10)] = Field(1.0, description="the clip's own sound; 0 mutes it")
    transition: Transition | None = Field(None, description="the join INTO the next piece; default [edit] transition")
    hold: Seconds = Field(0.0, description="freeze the last used frame this many seconds (silent)")


class EditTitle(_Strict):
    """`[[edit.title]]`: a card of its own, before or after a shot's clip."""

    text: Text
    before: Name | None = Field(None, description="the shot this card comes before")
    after: Name | None = Field(None, description="the shot this card comes after")
    duration: Annotated[float, Field(gt=0, le=MAX_SECONDS)] = 3.0
    background: Name = Field("#000000", description='a colour "#rrggbb" or the name of an image asset')


class EditText(_Strict):
    """`[[edit.text]]`: text over the picture of one clip, timed from that clip's in point."""

    shot: Name
    text: Text
    start: Seconds = 0.0
    end: Seconds
    position: Literal["lower-third", "center", "top"] = "lower-third"


class EditSound(_Strict):
    """`[[edit.sound]]`: music or voice-over placed on the film's timeline."""

    path: Name | None = Field(None, description="an audio file in the board's folder (WAV, MP3, AAC/M4A, FLAC)")
    asset: Name | None = Field(None, description="or the name of an audio asset")
    start: Seconds = Field(0.0, description="film seconds where it begins")
    in_: Seconds = Field(0.0, alias="in", description="seconds into the file")
    out: Seconds | None = Field(None, description="seconds into the file where it ends; default its end")
    gain: Annotated[float, Field(ge=-60, le=24)] = Field(0.0, description="dB")
    fade_in: Seconds = 0.0
    fade_out: Seconds = 0.0
    duck: bool = Field(False, description="lower it whenever the clips' own sound is loud")


class EditSubtitles(_Strict):
    """`[edit.subtitles]`: an SRT or WebVTT file in film time."""

    path: Name = Field(description="the subtitle file, inside the board's folder")
    burn: bool = Field(False, description="draw into the picture; false: a soft track plus an .srt beside the film")


class Edit(_Strict):
    """`[edit]`: how the clips become the film. Not part of any shot's key."""

    sequence: list[str] | None = Field(None, description="shot ids in film order (the short form; "
                                       "absent when [[edit.clip]] is given)")
    transition: Transition = Transition()
    audio: AudioEdit = AudioEdit()
    clip: Annotated[list[EditClip], Field(max_length=MAX_CLIPS)] | None = Field(
        None, description="the timeline in order: trimmed clips")
    title: Annotated[list[EditTitle], Field(max_length=MAX_TITLES)] = Field(default_factory=list)
    text: Annotated[list[EditText], Field(max_length=MAX_TEXTS)] = Field(default_factory=list)
    sound: Annotated[list[EditSound], Field(max_length=MAX_SOUNDS)] = Field(default_factory=list)
    subtitles: EditSubtitles | None = None


class CacheTable(_Strict):
    """`[cache]`: a remote shared by a team (any fsspec URL), so nobody pays twice for a shot."""

    remote: str | None = Field(None, description='e.g. "s3://bucket/prefix"; STORYBOARD_REMOTE overrides')
    remote_write: bool = Field(True, description="false: read from the remote, never upload (CI)")

    @field_validator("remote")
    @classmethod
    def _cloud_or_inside(cls, value: str | None) -> str | None:
        """A folder elsewhere is the user's to name (--remote, STORYBOARD_REMOTE), not the file's."""
        if value is not None and (reason := sandbox.check_remote_shape(value)) is not None:
            raise PydanticCustomError("remote_path", f"{reason}; give a folder elsewhere with --remote or "
                                      "STORYBOARD_REMOTE instead")
        return value


ProviderTable = create_model(
    "ProviderTable",
    __config__=ConfigDict(frozen=True, extra="allow"),
    __doc__="`[providers.NAME]` in the schema; each provider validates its own table strictly.",
    # ProviderSettings' fields, from the dataclass (which a pydantic model cannot extend)
    **{f.name: (hint, f.default) for f in dataclasses.fields(ProviderSettings)
       for hint in [typing.get_type_hints(ProviderSettings)[f.name]]},
)


class StoryboardFile(_Strict):
    """A storyboard TOML file."""

    film: Film = Film()
    vars: dict[str, Any] = Field(default_factory=dict, description="jinja2 variables for prompts")
    assets: dict[str, str | AssetTable] = Field(default_factory=dict)
    shot: list[ShotSpec] = Field(default_factory=list)
    edit: Edit = Edit()
    providers: dict[str, ProviderTable] = Field(default_factory=dict)
    cache: CacheTable = CacheTable()


def _printable(value: str) -> str:
    return value[:40].encode("unicode_escape").decode("ascii")
