"""The create body of one Omni interaction: which task a job is, and its content blocks.

A job maps to exactly one Interactions task (google-2026.md §1.4):

    edits            video + text                     task "edit"     (no aspect ratio, no duration)
    extends          video + text, duration "7s"      task "extend"   (the clip comes back 7 s longer)
    references       N images + text                  task "reference_to_video"
    first[/last]     1 or 2 images (in order) + text  task "image_to_video" (two images interpolate)
    otherwise        the prompt as a string           task "text_to_video"

Media always travel inline (base64), wrapped in one `user_input` step as the SDK sends them,
so no upload and no expiring handle is needed: a film-maker's own MP4 is edited like a
generated clip. Durations are strings ("6s"; "6.5s" where fractional): an integer is a 400.
Omni takes no negative prompt, temperature or safety settings: validation refuses a negative
prompt, and none of them is ever sent.
"""

from __future__ import annotations

import base64
from typing import Any

from storyboard.errors import ProviderError
from storyboard.job import EXTENSION_SECONDS, RenderContext, RenderJob
from storyboard.sniff import sniff

IMAGE_MIME = {"png": "image/png", "jpeg": "image/jpeg"}
MAX_EDIT_SECONDS = 10.0
"""Gemini API: an uploaded clip to edit may last at most 10 s (google-2026.md §1.8)."""
MAX_INTERPOLATION_SECONDS = 10.0


def seconds(value: float) -> str:
    """A duration on the wire: `"6s"`, `"6.5s"`; never a number (a number is a 400)."""
    return f"{value:g}s"


def task_of(job: RenderJob) -> str:
    """The Interactions task `job` is."""
    if job.edits:
        return "edit"
    if job.extends:
        return "extend"
    if job.references:
        return "reference_to_video"
    if job.first_frame:
        return "image_to_video"
    return "text_to_video"


def image_block(ctx: RenderContext, digest: str, provider: str) -> dict[str, str]:
    path = ctx.input_path(digest)
    mime = IMAGE_MIME.get(sniff(path) or "")
    if mime is None:
        raise ProviderError(f"{provider}: input {digest[:12]} is not a PNG or JPEG image", provider=provider)
    return {"type": "image", "mime_type": mime, "data": base64.b64encode(path.read_bytes()).decode()}


def video_block(ctx: RenderContext, digest: str, provider: str) -> dict[str, str]:
    path = ctx.input_path(digest)
    if sniff(path) != "mp4":
        raise ProviderError(f"{provider}: the source clip {digest[:12]} is not an MP4", provider=provider)
    return {"type": "video", "mime_type": "video/mp4", "data": base64.b64encode(path.read_bytes()).decode()}


def create_body(job: RenderJob, ctx: RenderContext, provider: str, *, background: bool = True) -> dict[str, Any]:
    """The `CreateModelInteraction` body for `job` (background + store: it is polled, then resumed)."""
    if job.negative_prompt:
        raise ProviderError(f"{provider}: Omni takes no negative prompt; say what you want in the prompt instead",
                            provider=provider)
    task = task_of(job)
    response_format: dict[str, Any] = {"type": "video", "resolution": job.resolution}
    media: list[dict[str, Any]] = []
    if task == "edit":
        assert job.edits is not None
        if job.duration > MAX_EDIT_SECONDS:
            raise ProviderError(f"{provider}: the clip to edit lasts {job.duration:g} s; Omni edits clips of at "
                                f"most {MAX_EDIT_SECONDS:g} s (trim the source first)", provider=provider)
        media.append(video_block(ctx, job.edits, provider))
    else:
        response_format["aspect_ratio"] = job.aspect_ratio
        if task == "extend":
            assert job.extends is not None
            media.append(video_block(ctx, job.extends, provider))
            response_format["duration"] = seconds(EXTENSION_SECONDS)
        else:
            response_format["duration"] = seconds(job.duration)
            images = list(job.references) or [d for d in (job.first_frame, job.last_frame) if d]
            if job.last_frame and job.duration > MAX_INTERPOLATION_SECONDS:
                raise ProviderError(f"{provider}: a first and last frame allow at most "
                                    f"{MAX_INTERPOLATION_SECONDS:g} s; the shot is {job.duration:g} s",
                                    provider=provider)
            media.extend(image_block(ctx, d, provider) for d in images)
    body: dict[str, Any] = {
        "model": job.model,
        "input": ([{"type": "user_input", "content": [*media, {"type": "text", "text": job.prompt}]}]
                  if media else job.prompt),
        "response_format": response_format,
        "generation_config": {"video_config": {"task": task}},
        "background": background,
        "store": True,
    }
    if job.seed is not None:
        body["generation_config"]["seed"] = job.seed
    return body
