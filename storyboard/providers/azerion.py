"""Azerion: Veo 3.1 in one synchronous call that answers with the finished video.

    POST {base}/v1/videos/generation   Authorization: Bearer   -> 200 {"videos": [{"base64_encoded"} | {"url"}]}
    errors: {"error": {"message", "type", "code", "param", "status_code"}}

There is no job to poll, so a build killed mid-request cannot pick the work up again
(`Capabilities.resumable` is False; `plan` says so before paid work). Decisions where the
sources are silent or disagree (docs/providers.md §4):

- Before sending, the journal records `{"sync": true, "sent": …}`. A build that finds that
  entry (an earlier build was killed while Azerion worked) logs a warning that the earlier
  request may have been charged, reports the state `resending`, and sends the request again:
  the user asked for the shot by building again, and there is nothing else to recover.
- The request is retried only when it surely did no work: connection refused, 408/429/5xx.
  A read timeout or a connection cut after the request left is not retried within the build
  (Azerion may have generated, and charged for, the video; a proxy that cuts long requests
  would otherwise be paid for six times over): the shot fails saying so, and the journal entry
  stays, so the next build warns before it resends. The read timeout is `timeout` (default 600 s).
- Images go inline as `{"mime_type", "base_64_encoded"}` (PNG or JPEG, read from their bytes);
  references as `{"image": …, "reference_type": "subject"}`. Extension sends the source clip's
  bytes as `video` and leaves duration, resolution and aspect ratio to follow the source (the
  docs say only that about 7 s are added).
- `output_format` is sent as "base64" (settable to "url" in `[providers.azerion]`); both answer
  forms are read whatever was asked. The request spells `base_64_encoded`, the answer
  `base64_encoded`; the answer is read in either spelling.
- Capabilities: no 4k, prompt <= 4,000 characters. The parameters (`person_generation`,
  `resize_mode`, `compression_quality`, `generate_audio`) are Vertex AI's, so Vertex's extension
  limits are assumed: 720p only, at most 37 s in total.
- Price: none published, so `price()` is None. Rate limits: none published; 10 rpm assumed.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from storyboard.errors import ProviderError
from storyboard.job import EXTENSION_SECONDS, Capabilities, Price, RenderContext, RenderJob
from storyboard.providers import ProviderSettings
from storyboard.providers._base import HttpProvider
from storyboard.providers._http import raise_for_api_error, response_json, send, utc_iso, with_retries, write_mp4
from storyboard.providers._transfer import json_or_none
from storyboard.providers.gemini import inline_image

if TYPE_CHECKING:
    import httpx  # imported when a request is made: a plan never needs it

log = logging.getLogger(__name__)

STANDARD = Capabilities(resolutions=frozenset({"720p", "1080p"}), max_prompt_chars=4000,
                        max_extended_seconds=30 + EXTENSION_SECONDS, resumable=False)


def _sent() -> tuple[type[Exception], ...]:
    """Faults after the request left: the video may have been generated and charged."""
    import httpx  # here, not at import: a plan never needs it

    return (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)


@dataclass(frozen=True, kw_only=True)
class AzerionSettings(ProviderSettings):
    """`[providers.azerion]`: the common settings plus the answer's form."""

    output_format: Literal["base64", "url"] = "base64"


class AzerionProvider(HttpProvider):
    """Veo 3.1 through Azerion's synchronous API, with a key from AZERION_API_KEY."""

    name = "azerion"
    default_model = "google-veo-3-1"
    default_base_url = "https://api.azerion.ai"
    official_hosts = ("api.azerion.ai",)
    key_env = ("AZERION_API_KEY",)
    Settings = AzerionSettings
    default_concurrency = 2
    default_rpm = 10
    default_timeout = 600.0

    def capabilities(self, model: str) -> Capabilities:
        return STANDARD

    def price(self, job: RenderJob) -> Price | None:
        """Unknown: Azerion publishes no price for Veo 3.1."""
        return None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    # ---- the wire -----------------------------------------------------------------------------

    def media(self, ctx: RenderContext, digest: str) -> dict[str, str]:
        """An input image as Azerion's media object."""
        image = inline_image(ctx, digest, self.name)
        return {"mime_type": image["mimeType"], "base_64_encoded": image["bytesBase64Encoded"]}

    def request_body(self, job: RenderJob, ctx: RenderContext) -> dict[str, Any]:
        """The documented keys for `job`, nulls omitted."""
        body: dict[str, Any] = {"model": job.model, "prompt": job.prompt, "n": ctx.samples, "generate_audio": job.audio,
                                "output_format": getattr(self.settings, "output_format", "base64")}
        if job.extends:
            data = ctx.input_path(job.extends).read_bytes()
            body["video"] = {"mime_type": "video/mp4", "base_64_encoded": base64.b64encode(data).decode()}
        else:
            body.update(duration=job.duration, resolution=job.resolution, aspect_ratio=job.aspect_ratio)
        if job.first_frame:
            body["image"] = self.media(ctx, job.first_frame)
        if job.last_frame:
            body["last_frame"] = self.media(ctx, job.last_frame)
        if job.references:
            body["reference_images"] = [{"image": self.media(ctx, d), "reference_type": "subject"}
                                        for d in job.references]
        if job.negative_prompt:
            body["negative_prompt"] = job.negative_prompt
        if job.seed is not None:
            body["seed"] = job.seed
        return body

    def wait_for(self, job: RenderJob, ctx: RenderContext) -> tuple[str | None, Any]:
        """Send the one synchronous request (journaled first); returns (None, the answer)."""
        entry = ctx.journal.read() or {}
        if entry.get("provider") == self.name and entry.get("sync"):
            log.warning("shot '%s': an earlier build was stopped while Azerion was generating this shot (request "
                        "sent %s); a synchronous request cannot be resumed and may have been charged. Sending it "
                        "again", ctx.shot_id, entry.get("sent", "at an unknown time"))
            ctx.progress("resending", None)
        body = self.request_body(job, ctx)
        ctx.journal.write({"sync": True, "provider": self.name, "model": job.model, "sent": utc_iso()})
        ctx.progress("submitted", None)
        ctx.progress("rendering", None)
        try:
            response = self.generate(body, ctx, self.inline_limit(job))
        except ProviderError as exc:
            if exc.status is not None:  # Azerion answered with an error: nothing was generated
                ctx.journal.clear()
            raise
        return None, response_json(response, self.name)

    def generate(self, body: dict[str, Any], ctx: RenderContext, limit: int | None = None) -> httpx.Response:
        """POST the body; retry only faults that prove no work was done (see the module docstring).

        The answer may carry the video inline, so it may weigh `limit` bytes.
        """
        url = f"{self.base_url}/v1/videos/generation"

        def attempt() -> httpx.Response:
            self.limiter.acquire(ctx.sleep)
            try:
                response = send(self.client, "POST", url, provider=self.name, limit=limit, limits=self.limits,
                                json=body, headers=self.headers())
            except _sent() as exc:
                timeout = self.settings.timeout or self.default_timeout
                raise ProviderError(
                    f"{self.name}: the connection ended while Azerion was generating ({type(exc).__name__}: {exc}); "
                    "the request may have been charged, so it is not sent again in this build. Build again to "
                    f"resend it; if this repeats, raise `timeout` in [providers.{self.name}] (now {timeout:g} s) "
                    "or check for a proxy that cuts long requests", provider=self.name) from exc
            self.check(response)
            return response

        return with_retries(attempt, provider=self.name, sleep=ctx.sleep, rng=self.rng, policy=self.policy,
                            secrets=self.secrets())

    def check(self, response: httpx.Response) -> None:
        """raise_for_api_error (which quotes `error.message`), naming the envelope's type, code and param."""
        try:
            raise_for_api_error(response, self.name)
        except ProviderError as exc:
            body = json_or_none(response)
            error = body.get("error") if isinstance(body, dict) else None
            said = [f"{k} {error[k]}" for k in ("type", "code", "param") if isinstance(error, dict) and error.get(k)]
            if not said:
                raise
            raise ProviderError(f"{exc.message} ({', '.join(said)})", provider=self.name, status=exc.status,
                                retryable=exc.retryable, retry_after=exc.retry_after) from None

    def outcome(self, finished: dict[str, Any]) -> dict[str, Any]:
        """The first video of the answer, or why there is none."""
        videos = finished.get("videos")
        if isinstance(videos, list) and videos and isinstance(videos[0], dict) and videos[0]:
            return videos[0]
        raise ProviderError(f"{self.name}: the answer holds no video (a safety filter may have removed it): "
                            f"{str(finished)[:300]}", provider=self.name)

    max_samples = 4
    """`n`, 1-4 videos a request: a shot's takes (storyboard.takes)."""

    def outcomes(self, finished: dict[str, Any]) -> list[dict[str, Any]]:
        """Every video of the answer (`n` of them), in order."""
        self.outcome(finished)
        return [v for v in finished["videos"] if isinstance(v, dict) and v]

    def fetch(self, output: dict[str, Any], job: RenderJob, dest: Path, ctx: RenderContext) -> dict[str, Any] | None:
        """Write the inline bytes, or download the URL (the key goes only to the API's origin)."""
        data = output.get("base64_encoded") or output.get("base_64_encoded")
        if isinstance(data, str) and data:
            write_mp4(base64.b64decode(data), dest, self.name)
        elif isinstance(output.get("url"), str) and output["url"]:
            self.download(output["url"], dest, ctx, self.headers(), job)
        else:
            raise ProviderError(f"{self.name}: the video has neither base64 data nor a URL", provider=self.name)
        return None
