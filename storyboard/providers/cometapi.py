"""CometAPI's async video jobs (apidoc.cometapi.com): Veo 3.1 aliases behind an OpenAI-style route.

    POST {base}/v1/videos              multipart: prompt, model, size, input_reference × 0–2
    GET  {base}/v1/videos/{id}         until status is completed or failed
    GET  video_url, else {base}/v1/videos/{id}/content with the key

Auth is `Authorization: Bearer COMETAPI_API_KEY` (the API reference; one blog example sends the
bare key, which the API reference does not). The task handling is UniAll's (TaskGateway).

Decisions where the sources are silent or disagree (docs/providers.md §6, seed 004):

- route: the async `/v1/videos` jobs, not the chat-completions stream of seed 004, whose
  stream format and `extra_body.google` block are confirmed nowhere but a blog.
- what the aliases control: only `prompt`, `model`, `size` (`16x9`/`9x16`) and up to two
  `input_reference` files (first frame, then last frame). No duration, resolution, seed,
  negative prompt, reference images or extension, and audio is always on. The capabilities
  say exactly that (8 s, 720p unless the alias names 4K or 1080p, e.g. `veo3.1-4k`), so
  validation rejects what the route cannot do before anything is paid.
- models: `veo3.1` (default) and `veo3.1-pro`, the aliases seed 004 prices; any other alias is
  passed through with the same limits and no price.
- price: seed 004's "veo3.1 0.4000, veo3.1-pro 2.0000" is read as USD per request (per video):
  the unit is not stated. An unknown alias is unpriced.
- files: the multipart part names the file `first.png` / `last.jpg` with its real type, read
  from its bytes.
- a completed task without `video_url` is downloaded from `/v1/videos/{id}/content`; the key
  goes only to the API's own origin, never to a `video_url` on another host.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from storyboard.errors import ProviderError
from storyboard.job import Capabilities, Price, RenderContext, RenderJob
from storyboard.providers.uniall import TaskGateway
from storyboard.sniff import sniff

ALIAS = Capabilities(durations=frozenset({8}), resolutions=frozenset({"720p"}), max_references=0,
                     extension=False, audio_control=False, seed=False, negative_prompt=False)
PRICES: dict[str, float] = {"veo3.1": 0.40, "veo3.1-pro": 2.00}
"""USD per request (per generated video), from seed 004; the unit is inferred."""
SIZES = {"16:9": "16x9", "9:16": "9x16"}
_MIME = {"png": "image/png", "jpeg": "image/jpeg"}
_RESOLUTION_IN_NAME = re.compile(r"(4k|1080p)", re.IGNORECASE)


class CometApiProvider(TaskGateway):
    """Veo 3.1 through CometAPI's `/v1/videos` jobs, with an API key from COMETAPI_API_KEY."""

    name = "cometapi"
    default_model = "veo3.1"
    default_base_url = "https://api.cometapi.com"
    official_hosts = ("api.cometapi.com",)
    key_env = ("COMETAPI_API_KEY",)
    default_concurrency = 2
    default_rpm = 10

    def capabilities(self, model: str) -> Capabilities:
        """8 s at 720p (or the resolution the alias names), first and last frame, nothing else."""
        named = _RESOLUTION_IN_NAME.search(model)
        return replace(ALIAS, resolutions=frozenset({named[1].lower()})) if named else ALIAS

    def price(self, job: RenderJob) -> Price | None:
        """USD per request from seed 004, or None for an alias it does not list."""
        amount = PRICES.get(job.model)
        return Price(amount) if amount is not None else None

    def content_url(self, operation: str) -> str:
        return f"{self.base_url}/v1/videos/{operation}/content"

    # ---- the wire -----------------------------------------------------------------------------

    def form(self, job: RenderJob, ctx: RenderContext) -> list[tuple[str, tuple[str | None, Any, str | None]]]:
        """The multipart parts of `POST /v1/videos`: the fields, then 0, 1 or 2 `input_reference` images.

        Text fields go as parts without a filename, so a text-only job is multipart/form-data too
        (httpx would send bare `data=` url-encoded).
        """
        parts: list[tuple[str, tuple[str | None, Any, str | None]]] = [
            ("prompt", (None, job.prompt, None)), ("model", (None, job.model, None)),
            ("size", (None, SIZES[job.aspect_ratio], None))]
        for which, digest in (("first", job.first_frame), ("last", job.last_frame)):
            if digest:
                path = ctx.input_path(digest)
                kind = sniff(path) or ""
                if kind not in _MIME:
                    raise ProviderError(f"{self.name}: input {digest[:12]} is not a PNG or JPEG image",
                                        provider=self.name)
                name = f"{which}.{'jpg' if kind == 'jpeg' else kind}"
                parts.append(("input_reference", (name, path.read_bytes(), _MIME[kind])))
        return parts

    def submit(self, job: RenderJob, ctx: RenderContext) -> str:
        response = self.request("POST", f"{self.base_url}/v1/videos", ctx, limited=True,
                                files=self.form(job, ctx), headers=self.headers())
        return self.created(response)
