"""load(path) -> Board: parse the TOML, validate it, apply defaults, render prompts, resolve inputs.

Every problem becomes a StoryboardFileError that names the file, the shot and the field,
with a suggestion where one fits. Nothing here touches the network or runs ffmpeg.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from storyboard.errors import StoryboardFileError, did_you_mean
from storyboard.job import EXTENSION_SECONDS
from storyboard.model import (
    ID_PATTERN,
    Asset,
    AssetTable,
    Board,
    FrameInput,
    FrameRef,
    ImageInput,
    Shot,
    ShotSpec,
    StoryboardFile,
)
from storyboard.sniff import sniff

IMAGE_KINDS = ("png", "jpeg")
CLIP_KINDS = ("mp4",)
_ID_RE = re.compile(ID_PATTERN)


class _Where:
    """Formats 'file: shot 'x': field 'y': message'."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, message: str, shot: str | None = None, field: str | None = None) -> StoryboardFileError:
        parts = [str(self.path)]
        if shot is not None:
            parts.append(f"shot '{shot}'")
        if field is not None:
            parts.append(f"field '{field}'")
        return StoryboardFileError(": ".join(parts) + ": " + message)


def load(path: str | Path, *, allow_outside: bool = False, provider: str | None = None) -> Board:
    """Read and validate a storyboard file.

    Raises:
        StoryboardFileError: the file is missing, not TOML, or breaks a rule.
        GraphError: a shot names an unknown shot, or the shots form a cycle.
    """
    path = Path(path)
    where = _Where(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StoryboardFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StoryboardFileError(f"{path}: is a folder; give the storyboard's .toml file") from None
    except OSError as exc:
        raise StoryboardFileError(f"{path}: cannot read the file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StoryboardFileError(f"{path}: line {line} is not UTF-8 text; save the file as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StoryboardFileError(f"{path}: invalid TOML: {exc}") from None
    try:
        spec = StoryboardFile.model_validate(raw)
    except ValidationError as exc:
        raise _explain_validation(where, raw, exc) from None
    if provider is not None:
        spec = spec.model_copy(update={
            "film": spec.film.model_copy(update={"provider": provider}),
            "shot": [s.model_copy(update={"provider": None}) for s in spec.shot],
        })
    return _resolve(path, where, spec, allow_outside)


def _explain_validation(where: _Where, raw: dict[str, Any], exc: ValidationError) -> StoryboardFileError:
    """Turn pydantic's first error into one sentence that names the table, the shot and the field."""
    from storyboard import model

    errors = exc.errors()
    # a table given where `str | FrameRef` is allowed: the string branch's complaint is noise
    relevant = [e for e in errors if not ("str" in e["loc"] and isinstance(e.get("input"), dict))] or errors
    # a number given where `"first" | "last" | seconds` is allowed: the literal branch's complaint is noise
    relevant = [e for e in relevant if not (e["type"] == "literal_error" and isinstance(e.get("input"), int | float)
                                            and not isinstance(e.get("input"), bool))] or relevant
    err = relevant[0]
    loc = list(err["loc"])
    shot = None
    if loc[:1] == ["shot"] and len(loc) > 1 and isinstance(loc[1], int):
        entry = raw.get("shot", [])[loc[1]]
        shot = str(entry["id"]) if isinstance(entry, dict) and isinstance(entry.get("id"), str) else f"#{loc[1] + 1}"
        loc = loc[2:]
    # drop pydantic's union-branch labels such as 'str', 'FrameRef', 'literal[...]', and list indexes
    names = [str(p) for p in loc if isinstance(p, str) and not (p[:1].isupper() or "[" in p or p in ("str", "float", "int", "bool"))]
    more = len(relevant) - 1
    tail = f" ({more} more problem{'s' if more > 1 else ''} after this one)" if more else ""
    if shot is None and len(names) == 1 and err["type"] == "extra_forbidden":
        return where.error(f"unknown table '{names[0]}'{did_you_mean(names[0], model.StoryboardFile.model_fields)}"
                           f"; the tables are {', '.join(model.StoryboardFile.model_fields)}")
    table = f"[{names[0]}] " if shot is None and names else ""
    fields = names if shot is not None else names[1:]
    if err["type"] == "extra_forbidden":
        key = fields[-1] if fields else "?"
        owners: dict[str | None, type] = {
            "film": model.Film, "edit": model.Edit, "transition": model.Transition, "audio": model.AudioEdit,
            "first_frame": model.FrameRef, "last_frame": model.FrameRef, "references": model.FrameRef,
            "assets": model.AssetTable, "cache": model.CacheTable,
        }
        parent = fields[-2] if len(fields) > 1 else (None if shot is not None else names[0])
        owner = model.ShotSpec if parent is None else owners.get(parent, model.FrameRef)
        where_ = f" in '{parent}'" if parent and shot is not None else ""
        return where.error(f"{table}unknown key '{key}'{where_}{did_you_mean(key, owner.model_fields)}{tail}", shot)
    message = re.sub(r" or instance of \w+", "", err["msg"]).replace("valid dictionary", "table")
    if err["type"] == "missing":
        message = "is required"
    value = err.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict | list) and err["type"] != "missing" else ""
    field = ".".join(fields) or None
    if shot is None:
        prefix = f"{table}field '{field}': " if field else table
        return where.error(f"{prefix}{message}{shown}{tail}")
    return where.error(f"{message}{shown}{tail}", shot, field)


def _resolve(path: Path, where: _Where, spec: StoryboardFile, allow_outside: bool) -> Board:
    from storyboard.providers import available, provider_class

    root = path.resolve().parent
    assets = {name: _asset(where, root, name, value, allow_outside) for name, value in spec.assets.items()}
    registry = available()
    providers: dict[str, Any] = {}
    for name, table in spec.providers.items():
        if name not in registry:
            raise where.error(f"[providers.{name}]: unknown provider '{name}'{did_you_mean(name, registry)}; "
                              f"available: {', '.join(sorted(registry))}")
        cls = provider_class(name, registry)
        try:
            providers[name] = cls.Settings.model_validate(table.model_dump(exclude_unset=True))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            hint = did_you_mean(key, cls.Settings.model_fields) if err["type"] == "extra_forbidden" else ""
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            raise where.error(f"[providers.{name}]: {msg} '{key}'{hint}") from None

    ids: dict[str, int] = {}
    for i, s in enumerate(spec.shot):
        if not _ID_RE.match(s.id):
            raise where.error("ids use only lowercase letters, digits, '-' and '_' (e.g. 'opening-2')", s.id, "id")
        if s.id in ids:
            raise where.error(f"duplicate id: shot #{ids[s.id] + 1} already uses it", s.id, "id")
        ids[s.id] = i
    if not ids:
        raise where.error("no shots: add a [[shot]] table with an id and a prompt")

    render = _PromptRenderer(where, spec.vars)
    instances: dict[str, Any] = {}
    shots: dict[str, Shot] = {}
    for index, s in enumerate(spec.shot):
        provider = s.provider or spec.film.provider
        if provider not in registry:
            field = "provider" if s.provider else None
            msg = f"unknown provider '{provider}'{did_you_mean(provider, registry)}; available: {', '.join(sorted(registry))}"
            raise where.error(msg, s.id, field) if field else where.error(f"[film] field 'provider': {msg}")
        if provider not in instances:
            cls = provider_class(provider, registry)
            instances[provider] = cls(providers.get(provider) or cls.Settings())
        impl = instances[provider]
        settings = providers.get(provider)
        model_name = s.model or (settings.model if settings and settings.model else None) or spec.film.model or impl.default_model
        first, continues = _first_frame(where, root, s, ids, assets, allow_outside)
        caps = impl.capabilities(model_name)
        # [film] values are defaults where a provider takes them: a film-wide seed does not make every
        # shot on a seedless provider invalid (a seed set on the shot itself still does)
        film_seed = spec.film.seed if caps.seed else None
        film_negative = spec.film.negative_prompt if caps.negative_prompt else None
        shots[s.id] = Shot(
            id=s.id,
            index=index,
            prompt=render(s.prompt, s.id, "prompt"),
            negative_prompt=_opt(render, s.negative_prompt if s.negative_prompt is not None else film_negative,
                                 s.id, inherited=s.negative_prompt is None),
            # an extension's length is Veo's rule (+7 s), not the film's default
            duration=s.duration if s.duration is not None else (EXTENSION_SECONDS if s.extends
                                                                 else spec.film.duration),
            resolution=s.resolution or spec.film.resolution,
            aspect_ratio=s.aspect_ratio or spec.film.aspect_ratio,
            seed=s.seed if s.seed is not None else film_seed,
            audio=s.audio if s.audio is not None else spec.film.audio,
            take=s.take,
            provider=provider,
            model=model_name,
            first_frame=first,
            last_frame=_image(where, root, s.id, "last_frame", s.last_frame, ids, assets, allow_outside),
            extends=_shot_ref(where, s.id, "extends", s.extends, ids),
            references=tuple(
                _image(where, root, s.id, "references", r, ids, assets, allow_outside) for r in s.references
            ),
            continues=continues,
            inherited=frozenset(
                name for name in ("duration", "resolution", "aspect_ratio", "seed", "audio", "negative_prompt")
                if getattr(s, name) is None and getattr(spec.film, name) is not None
                and not (name == "duration" and s.extends)
            ) | ({"provider"} if s.provider is None else set()),
        )

    from storyboard.rules import check_board

    sequence = _sequence(where, spec, shots)
    board = Board(path=path, film=spec.film, shots=shots, assets=assets, edit=spec.edit,
                  sequence=sequence, providers=providers, cache=spec.cache)
    def error(message: str, shot: str | None = None, field: str | None = None) -> StoryboardFileError:
        if shot is not None and field is not None and field in board.shots[shot].inherited:
            message = f"{message} (the value comes from [film] {field}: change it there, or set it on the shot)"
        return where.error(message, shot, field)

    check_board(board, error, instances)
    return board


def _opt(render: _PromptRenderer, text: str | None, shot: str, inherited: bool = False) -> str | None:
    if text is None:
        return None
    if inherited:
        try:
            return render(text, shot, "negative_prompt")
        except StoryboardFileError as exc:
            raise StoryboardFileError(exc.message.replace(f"shot '{shot}': field 'negative_prompt'",
                                                          "[film] field 'negative_prompt'")) from None
    return render(text, shot, "negative_prompt")


def _first_frame(where: _Where, root: Path, s: ShotSpec, ids: dict[str, int], assets: dict[str, Asset],
                 allow_outside: bool) -> tuple[ImageInput | None, str | None]:
    if s.continues is not None and s.first_frame is not None:
        raise where.error(
            "'continues' already sets the first frame (the last frame of that shot); "
            "remove 'first_frame', or replace 'continues' with first_frame = { shot = ..., frame = ... }",
            s.id, "continues")
    if s.extends is not None and (s.continues is not None or s.first_frame is not None):
        other = "continues" if s.continues is not None else "first_frame"
        raise where.error(
            f"'extends' continues the clip itself and cannot be combined with '{other}'; keep one of them",
            s.id, "extends")
    if s.continues is not None:
        upstream = _shot_ref(where, s.id, "continues", s.continues, ids)
        return FrameInput(upstream, "last"), upstream
    return _image(where, root, s.id, "first_frame", s.first_frame, ids, assets, allow_outside), None


def _shot_ref(where: _Where, shot: str, field: str, target: str | None, ids: dict[str, int]) -> str | None:
    if target is None:
        return None
    if target not in ids:
        raise where.error(f"unknown shot '{target}'{did_you_mean(target, ids)}", shot, field)
    if target == shot:
        raise where.error(f"a shot cannot use itself (cycle: {shot} -> {shot})", shot, field)
    return target


def _image(where: _Where, root: Path, shot: str, field: str, ref: str | FrameRef | None, ids: dict[str, int],
           assets: dict[str, Asset], allow_outside: bool) -> ImageInput | None:
    if ref is None:
        return None
    if isinstance(ref, FrameRef):
        return FrameInput(_shot_ref(where, shot, field, ref.shot, ids) or "", ref.frame)
    if ref in assets:
        asset = assets[ref]
    elif ref.startswith(("http://", "https://")):
        return Asset(name=ref, url=ref)
    elif "/" in ref or Path(ref).suffix.lower() in (".png", ".jpg", ".jpeg", ".mp4"):
        try:
            asset = _asset(where, root, ref, ref, allow_outside)
        except StoryboardFileError as exc:
            detail = exc.message.split(": ", 1)[1].replace(f"[assets] '{ref}': ", "")
            raise where.error(detail, shot, field) from None
    else:
        hint = did_you_mean(ref, [*assets, *ids])
        if ref in ids:
            hint = f" ('{ref}' is a shot: write {{ shot = \"{ref}\", frame = \"last\" }})"
        raise where.error(f"unknown asset '{ref}'{hint}", shot, field)
    if asset.kind is not None and asset.kind not in IMAGE_KINDS:
        raise where.error(f"'{ref}' is a video clip, but {field} needs a PNG or JPEG image", shot, field)
    return asset


def _asset(where: _Where, root: Path, name: str, value: str | AssetTable, allow_outside: bool) -> Asset:
    if isinstance(value, AssetTable):
        if (value.path is None) == (value.url is None):
            raise where.error(f"[assets] '{name}': give exactly one of 'path' or 'url'")
        if value.url is not None:
            return Asset(name=name, url=value.url)
        value = value.path or ""
    if value.startswith(("http://", "https://")):
        return Asset(name=name, url=value)
    given = Path(value)
    if given.is_absolute() and not allow_outside:
        raise where.error(f"[assets] '{name}': absolute path '{value}' is not allowed; put the file "
                          "beside the storyboard and use a relative path (or pass --allow-outside)")
    full = (root / given).resolve()
    if not allow_outside and not full.is_relative_to(root):
        raise where.error(f"[assets] '{name}': path '{value}' leaves the storyboard's folder; "
                          "copy the file inside it (or pass --allow-outside)")
    if full.is_dir():
        raise where.error(f"[assets] '{name}': '{value}' is a folder, not a file")
    if not full.is_file():
        nearby = [p.name for p in full.parent.iterdir() if p.is_file()] if full.parent.is_dir() else []
        close = difflib.get_close_matches(given.name, nearby, n=1, cutoff=0.8)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise where.error(f"[assets] '{name}': file '{value}' not found{hint}")
    kind = sniff(full)
    if kind is None:
        raise where.error(f"[assets] '{name}': '{value}' is not a PNG or JPEG image or an MP4 clip "
                          "(checked by its content, not its name)")
    return Asset(name=name, path=full, kind=kind)


def _sequence(where: _Where, spec: StoryboardFile, shots: dict[str, Shot]) -> tuple[str, ...]:
    if spec.edit.sequence is not None:
        for entry in spec.edit.sequence:
            if entry not in shots:
                raise where.error(f"[edit] field 'sequence': unknown shot '{entry}'{did_you_mean(entry, shots)}")
        if not spec.edit.sequence:
            raise where.error("[edit] field 'sequence' is empty: list the shots of the film, or remove it")
        return tuple(spec.edit.sequence)
    extended_by: dict[str, str] = {}
    for shot in shots.values():
        if shot.extends and shot.extends not in extended_by:
            extended_by[shot.extends] = shot.id
    chained = set(extended_by.values())
    order = []
    for shot in shots.values():
        if shot.id in chained:
            continue
        final = shot.id
        while final in extended_by:
            final = extended_by[final]
        order.append(final)
    return tuple(order)


class _PromptRenderer:
    """Renders prompt templates with [vars]; jinja2 is imported only when a prompt uses it."""

    def __init__(self, where: _Where, variables: dict[str, Any]) -> None:
        self.where = where
        self.variables = variables
        self._env: Any = None

    _PLAIN = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")

    def __call__(self, text: str, shot: str, field: str) -> str:
        if "{" not in text:
            return text
        rest = self._PLAIN.sub("", text)
        if not any(mark in rest for mark in ("{{", "{%", "{#")):
            # only `{{ name }}` substitutions: the same result as jinja2, without compiling a template
            return self._substitute(text, shot, field)
        import jinja2

        if self._env is None:
            self._env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                           keep_trailing_newline=False)
        try:
            return self._env.from_string(text).render(**self.variables)
        except jinja2.UndefinedError as exc:
            name = re.search(r"'([^']+)' is undefined", str(exc))
            missing = name.group(1) if name else str(exc)
            hint = did_you_mean(missing, self.variables)
            raise self.where.error(f"unknown variable '{missing}'{hint}; define it in [vars]", shot, field) from None
        except jinja2.TemplateSyntaxError as exc:
            raise self.where.error(f"template error on line {exc.lineno} of the prompt: {exc.message}",
                                   shot, field) from None

    def _substitute(self, text: str, shot: str, field: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.variables:
                hint = did_you_mean(name, self.variables)
                raise self.where.error(f"unknown variable '{name}'{hint}; define it in [vars]", shot, field)
            return str(self.variables[name])

        rendered = self._PLAIN.sub(value, text)
        return rendered[:-1] if rendered.endswith("\n") else rendered
