"""The resolved board the planner reads, and the bounds of the file format.

Two layers: the file's tables as written (`storyboard.spec` defines them with pydantic,
`storyboard.spec_tables` reads a valid file into them), and `Board`, what `load()` makes of them:
defaults applied, prompts rendered, references resolved. Nothing here imports pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard import sandbox

if TYPE_CHECKING:
    from storyboard.providers import ProviderSettings
    from storyboard.spec_tables import Table

SEED_MAX = 4_294_967_295
ID_PATTERN = r"^[a-z0-9_-]+$"
COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"
MAX_CLIPS = 10_000
MAX_TITLES = 1_000
MAX_TEXTS = 10_000
MAX_SOUNDS = 100
MAX_TEXT_CHARS = 500
MAX_SECONDS = 86_400.0
"""An [edit] is untrusted input too: every list, text and time is bounded."""


def film_output_problem(value: str) -> str | None:
    """Why `[film] output` cannot be the film's path, or None: it stays inside the board's folder and is
    an .mp4 (never the board itself). One rule for pydantic's validator and the schema check."""
    reason = sandbox.check_shape(value)
    if reason is None and not value.lower().endswith(".mp4"):
        reason = "must end in .mp4 (the film is an MP4 file)"
    return reason


# ---- the resolved board -------------------------------------------------------------------


@dataclass(frozen=True)
class Asset:
    """A local file or URL; `kind` is what its bytes are ('png', 'jpeg', 'mp4'), None for URLs."""

    name: str
    path: Path | None = None
    url: str | None = None
    kind: str | None = None

    @property
    def label(self) -> str:
        return self.name or str(self.path or self.url)


@dataclass(frozen=True)
class FrameInput:
    """A frame of an upstream shot's clip."""

    shot: str
    frame: str | float

    @property
    def label(self) -> str:
        return f"{self.shot}@{self.frame}"


ImageInput = Asset | FrameInput


@dataclass(frozen=True)
class Shot:
    """A shot with defaults applied, prompt rendered and every reference resolved."""

    id: str
    index: int
    prompt: str
    negative_prompt: str | None
    duration: int | float
    resolution: str
    aspect_ratio: str
    seed: int | None
    audio: bool
    take: int
    provider: str
    model: str
    first_frame: ImageInput | None
    last_frame: ImageInput | None
    extends: str | None
    references: tuple[ImageInput, ...]
    continues: str | None = None
    edits: str | Asset | None = None
    """The clip this shot edits: another shot's id, or an MP4 asset."""
    extends_clip: Asset | None = None
    """The MP4 asset this shot extends, when `extends` names footage rather than a shot (omni)."""
    options: tuple[tuple[str, str | int | float | bool], ...] = ()
    """The shot's own `options`, as written (sorted by name); its provider says which it takes."""
    inherited: frozenset[str] = frozenset()
    """Fields whose value came from [film], so errors can say where to fix them."""
    takes: int = 1
    """Candidates generated for this shot (storyboard.takes)."""
    pick: int = 1
    """The candidate the film and every dependant use."""

    def upstream(self) -> list[str]:
        """Shots whose outputs this shot needs, in a stable order (found once: plan asks often)."""
        found = self.__dict__.get("_upstream")
        if found is None:
            ups = [self.extends] if self.extends else []
            if isinstance(self.edits, str):
                ups.append(self.edits)
            for image in (self.first_frame, self.last_frame, *self.references):
                if isinstance(image, FrameInput):
                    ups.append(image.shot)
            found = tuple(dict.fromkeys(ups))
            object.__setattr__(self, "_upstream", found)  # not a field: equality and hash ignore it
        return list(found)


@dataclass(frozen=True)
class Board:
    """A loaded, validated storyboard."""

    path: Path
    film: Table
    """`[film]` as written (storyboard.spec_tables), like `edit` and `cache`."""
    shots: dict[str, Shot]
    assets: dict[str, Asset]
    edit: Table
    sequence: tuple[str, ...]
    providers: dict[str, ProviderSettings] = field(default_factory=dict)
    cache: Table = field(default_factory=lambda: _default_table("CacheTable"))
    warnings: tuple[str, ...] = ()
    """What `validate` reports without failing: a cue past the film's end, content playing twice, ..."""

    @property
    def root(self) -> Path:
        return self.path.resolve().parent

    def __post_init__(self) -> None:
        self.output  # noqa: B018 - checked at load, so `validate` catches a `build/` symlinked elsewhere

    @property
    def output(self) -> Path:
        """Where the film goes: inside the board's folder, symlinks resolved.

        Raises:
            OutsideError: `[film] output` leads outside the folder (a symlinked folder on the way).
        """
        return sandbox.inside(self.root, self.film.output, f"{self.path}: [film] output")


def _default_table(name: str) -> Any:
    from storyboard.spec_tables import default_table

    return default_table(name)
