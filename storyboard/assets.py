"""AssetResolver: a shot's images and clips resolved to checked local files inside the board's folder.

A file must be a regular file (a named pipe is never opened), inside the folder unless
`--allow-outside`, a PNG, JPEG or MP4 by its bytes, and an image must decode in full. URLs are
refused: nothing is fetched, so a URL would pass `validate` and fail at `build`.
"""

from __future__ import annotations

import os
from pathlib import Path

from storyboard.errors import StoryboardFileError, did_you_mean
from storyboard.model import Asset, FrameInput, ImageInput
from storyboard.spec_tables import Table
from storyboard.problems import Problems, Where
from storyboard.sniff import image_problem, sniff, special_kind

IMAGE_KINDS = ("png", "jpeg")


def clip_seconds(path: Path) -> int | float:
    """How long a clip is (frames / fps), whole when it is whole: the length of an edit of it."""
    from storyboard.job import FPS
    from storyboard.media import probe

    seconds = probe(path).frames / FPS
    return int(seconds) if seconds == int(seconds) else round(seconds, 4)
CLIP_KINDS = ("mp4",)
_MEDIA_SUFFIXES = (".png", ".jpg", ".jpeg", ".mp4")
_DOWNLOAD = "storyboard does not fetch URLs: download the file into the board's folder and give its path"


class AssetResolver:
    """Resolves `[assets]` at once (recording each problem) and shots' image references on demand."""

    def __init__(self, where: Where, problems: Problems, root: Path, declared: dict[str, str | Table],
                 ids: dict[str, int], allow_outside: bool) -> None:
        self.where = where
        self.root = root
        self.ids = ids
        self.allow_outside = allow_outside
        self.assets: dict[str, Asset] = {}
        self.broken: dict[str, StoryboardFileError] = {}
        for name, value in declared.items():
            try:
                self.assets[name] = self._declared(name, value)
            except StoryboardFileError as exc:
                problems.add(exc)
                self.broken[name] = exc

    def resolved(self) -> dict[str, Asset]:
        """The `[assets]` table, every entry checked."""
        return dict(self.assets)

    def first_frame(self, s: Table) -> tuple[ImageInput | None, str | None]:
        """The shot's first frame and the shot it `continues`, if any."""
        if s.continues is not None and s.first_frame is not None:
            raise self.where.error(
                "'continues' already sets the first frame (the last frame of that shot); "
                "remove 'first_frame', or replace 'continues' with first_frame = { shot = ..., frame = ... }",
                s.id, "continues")
        if s.extends is not None and (s.continues is not None or s.first_frame is not None):
            other = "continues" if s.continues is not None else "first_frame"
            raise self.where.error(
                f"'extends' continues the clip itself and cannot be combined with '{other}'; keep one of them",
                s.id, "extends")
        if s.continues is not None:
            upstream = self.shot_ref(s.id, "continues", s.continues)
            return FrameInput(upstream or "", "last"), upstream
        return self.image(s.id, "first_frame", s.first_frame), None

    def shot_ref(self, shot: str, field: str, target: str | None) -> str | None:
        """`target` checked to be another shot."""
        if target is None:
            return None
        if target not in self.ids:
            raise self.where.error(f"unknown shot '{target}'{did_you_mean(target, self.ids)}", shot, field)
        if target == shot:
            raise self.where.error(f"a shot cannot use itself (cycle: {shot} -> {shot})", shot, field)
        return target

    def image(self, shot: str, field: str, ref: str | Table | None) -> ImageInput | None:
        """An image input: a frame of another shot, a declared asset, or a path."""
        if ref is None:
            return None
        if not isinstance(ref, str):  # a FrameRef table
            return FrameInput(self.shot_ref(shot, field, ref.shot) or "", ref.frame)
        asset = self._named(shot, field, ref)
        if asset.kind not in IMAGE_KINDS:
            raise self.where.error(f"'{ref}' is {'a sound' if asset.kind == 'audio' else 'a video clip'}, but "
                                   f"{field} needs a PNG or JPEG image", shot, field)
        return asset

    def clip_source(self, s: Table) -> str | Asset | None:
        """What `edits` names: another shot (its clip) or an MP4 asset; alone, with nothing else to start from."""
        if s.edits is None:
            return None
        for other in ("extends", "continues", "first_frame", "last_frame", "references"):
            if getattr(s, other):
                raise self.where.error(f"'edits' turns a whole clip into a new one and cannot be combined with "
                                       f"'{other}'; keep one of them", s.id, "edits")
        if s.edits in self.ids:
            return self.shot_ref(s.id, "edits", s.edits)
        asset = self._named(s.id, "edits", s.edits)
        if asset.kind != "mp4":
            raise self.where.error(f"'{s.edits}' is an image, but 'edits' needs a clip: another shot's id or an "
                                   "MP4 asset", s.id, "edits")
        return asset

    def names_footage(self, ref: str) -> bool:
        """Whether `ref` names an asset or a file rather than a shot (a shot id wins)."""
        if ref in self.ids:
            return False
        return ref in self.assets or ref in self.broken or "/" in ref or Path(ref).suffix.lower() == ".mp4"

    def footage(self, shot: str, field: str, ref: str | None) -> Asset | None:
        """An MP4 asset named where a shot's clip could be (`extends` on omni)."""
        if ref is None:
            return None
        asset = self._named(shot, field, ref)
        if asset.kind != "mp4":
            raise self.where.error(f"'{ref}' is an image, but '{field}' needs a clip: another shot's id or an "
                                   "MP4 asset", shot, field)
        return asset

    def _named(self, shot: str, field: str, ref: str) -> Asset:
        """A declared asset or a file beside the storyboard, by name or path."""
        if ref in self.broken:
            raise self.broken[ref]  # recorded once already: the same message is not listed twice
        if ref in self.assets:
            asset = self.assets[ref]
        elif ref.startswith(("http://", "https://")):
            raise self.where.error(f"'{ref}' is a URL; {_DOWNLOAD}", shot, field)
        elif "/" in ref or Path(ref).suffix.lower() in _MEDIA_SUFFIXES:
            try:
                asset = self._file(ref, ref)
            except _FileProblem as exc:
                raise self.where.error(exc.detail, shot, field) from None
        else:
            hint = did_you_mean(ref, [*self.assets, *self.broken, *self.ids])
            if ref in self.ids:
                hint = f" ('{ref}' is a shot: write {{ shot = \"{ref}\", frame = \"last\" }})"
            raise self.where.error(f"unknown asset '{ref}'{hint}", shot, field)
        return asset

    def _declared(self, name: str, value: str | Table) -> Asset:
        if not isinstance(value, str):  # an AssetTable
            if (value.path is None) == (value.url is None):
                raise self.where.error(f"[assets] '{name}': give exactly one of 'path' or 'url'")
            value = value.path if value.path is not None else value.url or ""
        if value.startswith(("http://", "https://")):
            raise self.where.error(f"[assets] '{name}': '{value}' is a URL; {_DOWNLOAD}")
        try:
            return self._file(name, value)
        except _FileProblem as exc:
            raise self.where.error(f"[assets] '{name}': {exc.detail}") from None

    def _file(self, name: str, value: str) -> Asset:
        """A checked local file; raises _FileProblem saying what is wrong with it."""
        if "\0" in value:  # no file system takes it; pathlib raises ValueError
            raise _FileProblem("a path cannot contain a NUL character (\\0)")
        given = Path(value)
        if given.is_absolute() and not self.allow_outside:
            raise _FileProblem(f"absolute path '{value}' is not allowed; put the file beside the storyboard "
                               "and use a relative path (or pass --allow-outside)")
        try:
            full = (self.root / given).resolve()
        except (OSError, RuntimeError):  # Python 3.11 raises RuntimeError on a symlink loop
            raise _FileProblem(f"'{value}' is a symbolic link that loops") from None
        if not self.allow_outside and not full.is_relative_to(self.root):
            raise _FileProblem(f"path '{value}' leaves the storyboard's folder; copy the file inside it "
                               "(or pass --allow-outside)")
        try:
            mode = os.stat(full).st_mode
        except FileNotFoundError:
            nearby = [p.name for p in full.parent.iterdir() if p.is_file()] if full.parent.is_dir() else []
            import difflib  # only for a file that is not there

            close = difflib.get_close_matches(given.name, nearby, n=1, cutoff=0.8)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise _FileProblem(f"file '{value}' not found{hint}") from None
        except OSError as exc:
            raise _FileProblem(f"'{value}' cannot be read: {exc.strerror}") from None
        kind = special_kind(mode)
        if kind is not None:
            raise _FileProblem(f"'{value}' is {kind}, not a file")
        sort = sniff(full)
        if sort is None:
            raise _FileProblem(f"'{value}' is not a PNG or JPEG image, an MP4 clip or a sound file "
                               "(checked by its content, not its name)")
        if sort in IMAGE_KINDS and (why := image_problem(full)):
            raise _FileProblem(f"'{value}' {why}")
        return Asset(name=name, path=full, kind=sort)


class _FileProblem(Exception):
    """What is wrong with a file; the caller says where it was named."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

