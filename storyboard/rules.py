"""Veo 3.1's rules and each provider's capabilities, checked before anything is paid for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from storyboard.errors import StoryboardFileError
from storyboard.job import EXTENSION_SECONDS
from storyboard.model import Asset, Board, FrameInput, Shot

ErrorFn = Callable[..., StoryboardFileError]


def check_board(board: Board, error: ErrorFn, providers: dict[str, Any],
                capabilities: Callable[[str, str], Any] | None = None) -> None:
    """Raise the first rule a shot breaks (the edit is checked next, by storyboard.edit.rules.check_edit).

    `capabilities(provider, model)` answers as the provider's own method does (load asks it once
    per provider and model)."""
    capabilities = capabilities or (lambda provider, model: providers[provider].capabilities(model))
    from storyboard.graph import build_graph
    from storyboard.providers._hosts import refuse_foreign_hosts

    refuse_foreign_hosts(providers, error)  # a key goes only to its provider's host, loopback, or where the user said
    from storyboard.lifecycle import check_shots

    check_shots(board.shots.values(), providers, error)  # a shut-down model fails here, not after paying for others
    from storyboard.providers._upload import local_target_refusal

    for name, impl in providers.items():  # a file:// upload target stays inside the board's folder
        upload = getattr(getattr(impl, "settings", None), "upload", None)
        if isinstance(upload, str) and (why := local_target_refusal(upload, board.root)) is not None:
            raise error(f"[providers.{name}] field 'upload': {why}")
    # each shot's own rules (check_shot) were checked by load, every problem listed
    build_graph(board)  # cycles first: lengths below follow 'extends' chains
    for shot in board.shots.values():
        source = board.shots[shot.extends] if shot.extends else None
        if source and source.provider != shot.provider and getattr(providers[shot.provider],
                                                                   "extension_needs_handle", False):
            raise error(f"{shot.provider} extends only clips it generated itself, but '{source.id}' is made by "
                        f"{source.provider}; set provider = \"{shot.provider}\" on '{source.id}' too",
                        shot.id, "extends")
    lengths = clip_lengths(board)
    for shot in board.shots.values():
        caps = capabilities(shot.provider, shot.model)
        for field, footage in (("edits", shot.edits), ("extends", shot.extends_clip)):
            if isinstance(footage, Asset) and not edit_length(footage, lengths.get):
                raise error(f"asset '{footage.label}' does not decode as a video clip", shot.id, field)
        if (shot.extends or shot.extends_clip) and lengths[shot.id] > caps.max_extended_seconds:
            raise error(f"the extended clip would be {lengths[shot.id]} s; {shot.provider} extends up to "
                        f"{caps.max_extended_seconds} s in total", shot.id, "extends")
        for field, image in (("first_frame", shot.first_frame), ("last_frame", shot.last_frame),
                             *(("references", r) for r in shot.references)):
            if isinstance(image, FrameInput) and isinstance(image.frame, float | int) and not isinstance(image.frame, bool):
                if image.frame > lengths[image.shot]:
                    raise error(f"frame at {image.frame} s is past the end of '{image.shot}' "
                                f"({lengths[image.shot]} s long)", shot.id, field)
    # the edit's rules (trims, joins, titles, text, sound, subtitles) follow in storyboard.edit.rules


def edit_length(source: str | Asset, length: Callable[[str], float]) -> float:
    """An edit is as long as its source: another shot's clip, or the MP4 asset (0 if it will not decode)."""
    if isinstance(source, str):
        return length(source)
    from storyboard.assets import clip_seconds
    from storyboard.errors import MediaError

    try:
        return clip_seconds(source.path) if source.path else 0
    except MediaError:
        return 0


def clip_lengths(board: Board) -> dict[str, int]:
    """Seconds of each shot's clip: an extension returns its source plus 7 s, an edit its source's."""
    lengths: dict[str, int] = {}

    def length(shot_id: str) -> int:
        if shot_id not in lengths:
            shot = board.shots[shot_id]
            source = shot.extends or shot.extends_clip
            lengths[shot_id] = (edit_length(source, length) + EXTENSION_SECONDS if source else
                                edit_length(shot.edits, length) if shot.edits else shot.duration)
        return lengths[shot_id]

    for shot_id in board.shots:
        length(shot_id)
    return lengths


def check_shot(shot: Shot, caps: Any, error: ErrorFn) -> None:
    """The per-shot rules: Veo 3.1's combinations, then what this provider/model supports."""
    p = f"{shot.provider} ({shot.model})"
    first_field = "continues" if shot.continues else "first_frame"
    if not shot.prompt.strip():
        raise error("the prompt is empty; describe what happens in the shot", shot.id, "prompt")
    if shot.edits is not None and not caps.edit:
        raise error(f"{p} cannot edit a clip; make this shot with a provider that can (provider = \"omni\")",
                    shot.id, "edits")
    if shot.extends_clip is not None and not caps.extend_footage:
        raise error(f"{p} extends only clips it generated, not the MP4 asset '{shot.extends_clip.label}'; "
                    "make this shot with provider = \"omni\"", shot.id, "extends")
    if len(shot.prompt) > caps.max_prompt_chars:
        raise error(f"the prompt is {len(shot.prompt)} characters; {p} accepts at most "
                    f"{caps.max_prompt_chars}", shot.id, "prompt")
    if len(shot.references) > caps.max_references:
        raise error(f"{len(shot.references)} reference images; {p} accepts at most {caps.max_references}",
                    shot.id, "references")
    if shot.references:
        clash = ("'extends'" if shot.extends else f"'{first_field}'" if shot.first_frame else
                 "'last_frame'" if shot.last_frame else None)
        if clash:
            raise error(f"reference images cannot be combined with {clash} (Veo 3.1 rule); choose one: "
                        f"drop 'references', or drop {clash} and keep the references", shot.id, "references")
    if shot.last_frame is not None and shot.first_frame is None:
        raise error("a last frame needs a first frame (Veo 3.1 rule); add 'first_frame' or 'continues', "
                    "or drop 'last_frame'", shot.id, "last_frame")
    longest = max(caps.durations)
    if shot.extends is None and caps.fractional_durations:
        if not min(caps.durations) <= shot.duration <= longest:
            raise error(f"{shot.duration} s is not a duration {p} makes; choose {min(caps.durations)} to "
                        f"{longest} s (fractions allowed)", shot.id, "duration")
    elif shot.extends is None and shot.duration not in caps.durations:
        choices = "/".join(str(d) for d in sorted(caps.durations))
        raise error(f"{shot.duration} s is not a duration {p} makes; choose {choices}", shot.id, "duration")
    for needs, field, why in (
        (shot.resolution in caps.long_duration_only and not shot.extends, "resolution",
         f"{shot.resolution} needs"),
        (bool(shot.references) and caps.longest_for_inputs, "references", "reference images need"),
    ):
        if needs and shot.duration != longest:
            raise error(f"{why} duration = {longest} (Veo 3.1 rule), but the shot is {shot.duration} s; "
                        f"set duration = {longest}", shot.id, "duration")
    if shot.resolution not in caps.resolutions:
        raise error(f"{p} does not make {shot.resolution}; choose {', '.join(sorted(caps.resolutions))}",
                    shot.id, "resolution")
    if shot.aspect_ratio not in caps.aspect_ratios:
        raise error(f"{p} does not make {shot.aspect_ratio}; choose {', '.join(sorted(caps.aspect_ratios))}",
                    shot.id, "aspect_ratio")
    if shot.extends is not None:
        if not caps.extension:
            raise error(f"{p} cannot extend a clip; generate this shot with a provider that can, or use "
                        f"continues = \"{shot.extends}\" to start on its last frame", shot.id, "extends")
        # 8 is what every extension had to say before the length followed the rule; it means the same
        if shot.duration not in (EXTENSION_SECONDS, longest):
            raise error(f"the shot says duration = {shot.duration}, but an extension adds {EXTENSION_SECONDS} s to "
                        f"the source clip (Veo 3.1 rule); remove 'duration' (or set duration = {EXTENSION_SECONDS})",
                        shot.id, "duration")
        if shot.resolution not in caps.extension_resolutions:
            raise error(f"extension is {'/'.join(sorted(caps.extension_resolutions))} only, but the shot is "
                        f"{shot.resolution}; set resolution = \"720p\"", shot.id, "resolution")
    if not caps.local_media:
        for field, present in (("first_frame" if not shot.continues else "continues", shot.first_frame),
                               ("last_frame", shot.last_frame), ("references", shot.references),
                               ("extends", shot.extends)):
            if present:
                raise error(f"{shot.provider} takes images and clips only as URLs: set upload = \"s3://bucket/prefix\" "
                            f"and public_url = \"https://…/{{key}}\" in [providers.{shot.provider}] so storyboard "
                            "can publish them", shot.id, field)
    if shot.first_frame is not None and not caps.first_frame:
        raise error(f"{p} cannot start from an image", shot.id, first_field)
    if shot.last_frame is not None and not caps.last_frame:
        raise error(f"{p} cannot end on a given frame", shot.id, "last_frame")
    if not shot.audio and not caps.audio_control:
        raise error(f"{p} always generates audio; remove audio = false (mute it in the edit instead)",
                    shot.id, "audio")
    if shot.seed is not None and not caps.seed:
        raise error(f"{p} does not take a seed; remove 'seed'", shot.id, "seed")
    if shot.negative_prompt and not caps.negative_prompt:
        raise error(f"{p} does not take a negative prompt; remove 'negative_prompt'", shot.id, "negative_prompt")


def check_options(shot: Shot, impl: Any, error: ErrorFn) -> None:
    """A shot's `options`: each one its provider takes (`impl.Options`), with a value it accepts."""
    if not shot.options:
        return
    from storyboard.errors import did_you_mean
    from storyboard.providers.settings import settings_fields, validate_settings, validation_error

    options = getattr(impl, "Options", None)
    known = settings_fields(options) if options is not None else []
    for name, _ in shot.options:
        if name in known:
            continue
        owners = _option_owners(name)
        if owners:
            where = " or ".join(f'provider = "{owner}"' for owner in owners)
            raise error(f"{shot.provider} has no option '{name}'; it is a {'/'.join(owners)} option ({where})",
                        shot.id, f"options.{name}")
        takes = f"{shot.provider} takes {', '.join(sorted(known))}" if known else f"{shot.provider} takes no options"
        raise error(f"unknown option '{name}'{did_you_mean(name, known)}; {takes}", shot.id, f"options.{name}")
    try:
        validate_settings(options, dict(shot.options))
    except validation_error() as exc:
        problem = exc.errors()[0]
        name = str(problem["loc"][0]) if problem["loc"] else "options"
        raise error(f"{shot.provider}: {problem['msg']} (got {dict(shot.options).get(name)!r})", shot.id,
                    f"options.{name}") from None
    for name, _ in shot.options:
        if name in getattr(options, "image_to_video_only", ()) and shot.first_frame is None:
            raise error(f"'{name}' shapes how the first frame fits the video, but the shot has no first_frame; "
                        "remove the option or give the shot a first_frame", shot.id, f"options.{name}")


def _option_owners(name: str) -> list[str]:
    """The built-in providers that take option `name` (for a shot that asks the wrong one)."""
    from storyboard.providers import BUILTIN, provider_class
    from storyboard.providers.settings import settings_fields

    owners = []
    for provider in sorted(BUILTIN):
        try:
            options = getattr(provider_class(provider, BUILTIN), "Options", None)
        except (ImportError, AttributeError):  # a provider that fails to import only loses the hint
            continue
        if options is not None and name in settings_fields(options):
            owners.append(provider)
    return owners
