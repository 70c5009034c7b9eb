"""The Gemini API (generativelanguage v1beta): Veo 3.1 as a long-running operation.

    POST {base}/v1beta/models/{model}:predictLongRunning    x-goog-api-key  -> {"name": operation}
    GET  {base}/v1beta/{operation}                          until "done"
    GET  response.generateVideoResponse.generatedSamples[0].video.uri   (redirects followed)

Decisions where the sources disagree (docs/providers.md §1):

- seed: sent as `parameters.seed`. The REST reference lists it for Veo 3 while the python SDK
  refuses it in Gemini mode; the wire contract is the REST one, a film-wide `seed` must not make
  every Gemini shot invalid, and if Google ever refuses it the 400 quotes why.
- images travel in the SDK's form `{"bytesBase64Encoded", "mimeType"}` (the form the SDK sends in
  production); the REST samples' `inlineData` form is accepted by the fake server too.
- extension sends `{"video": {"uri": <Gemini file URI>}}` with `resolution: 720p` and
  `sampleCount: 1` only, like the REST sample: the output keeps the source's aspect ratio and
  adds 7 s. The URI comes from the handle the source's render returned; Google keeps files for
  2 days, so a missing or expired handle fails the shot before anything is paid for.
- audio: Veo 3.x on the Gemini API always generates audio (`audio_control=False`);
  `generateAudio` is never sent. `personGeneration` is not sent either: the allowed value
  depends on the mode and the region, and the server's default is always legal.
- prompt limit: 1,024 text tokens. Tokens cannot be counted offline, so the limit is checked as
  3,000 characters (about 3 characters a token, on the safe side of English's ~4).
- models: the preview names below have known capabilities; any other name is passed through
  with the standard model's capabilities and no price estimate.
- price: USD per second of output (storyboard/data/prices.json; providers.md §1.7). An
  extension is priced as the 7 new seconds at 720p: the returned clip repeats the source,
  which was paid for when it was generated (an assumption: Google publishes no extension rate).
- Google offers no idempotency key, so a submit is retried only when it provably never reached
  the API (no connection, or 408/429/503); one whose answer is lost after it left is journaled
  `uncertain` and not sent again without `build --resubmit` (storyboard.providers._base).
- lifecycle: Google shut the Veo 3.1 previews down on the Gemini API on 2026-10-22
  (storyboard/data/models.json): validation refuses them unless `allow_retired = true` in
  [providers.gemini], for accounts and proxies that still serve them.
- The key is sent as a header (never `?key=`), and on redirects only to the API's own origin
  and Google's HTTPS hosts; it never enters a message, a log line or the journal.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from storyboard.errors import ProviderError
from storyboard.job import EXTENSION_SECONDS, Capabilities, Price, RenderContext, RenderJob
from storyboard.providers._base import HttpProvider
from storyboard.providers._http import per_second, response_json, utc_iso, write_mp4
from storyboard.sniff import sniff

PROMPT_CHARS = 3000
FILE_LIFETIME = timedelta(days=2)
_MIME = {"png": "image/png", "jpeg": "image/jpeg"}

STANDARD = Capabilities(audio_control=False, max_prompt_chars=PROMPT_CHARS)
LITE = replace(STANDARD, resolutions=frozenset({"720p", "1080p"}), max_references=0, extension=False)
"""Lite: no 4k (docs); no references or extension (inferred from the gateways' Lite schemas)."""

MODELS: dict[str, Capabilities] = {
    "veo-3.1-generate-preview": STANDARD,
    "veo-3.1-fast-generate-preview": STANDARD,
    "veo-3.1-lite-generate-preview": LITE,
}


def inline_image(ctx: RenderContext, digest: str, provider: str) -> dict[str, str]:
    """An input image as `{"bytesBase64Encoded", "mimeType"}`, its type read from its bytes."""
    path = ctx.input_path(digest)
    mime = _MIME.get(sniff(path) or "")
    if mime is None:
        raise ProviderError(f"{provider}: input {digest[:12]} is not a PNG or JPEG image", provider=provider)
    return {"bytesBase64Encoded": base64.b64encode(path.read_bytes()).decode(), "mimeType": mime}


def rai_reasons(response: dict[str, Any]) -> list[str] | None:
    """The safety filter's reasons if it removed the video (under generateVideoResponse or not)."""
    for place in (response.get("generateVideoResponse") or {}, response):
        reasons = [str(r) for r in place.get("raiMediaFilteredReasons") or []]
        if place.get("raiMediaFilteredCount") or reasons:
            return reasons
    return None


def operation_error(provider: str, operation: dict[str, Any]) -> ProviderError | None:
    """The ProviderError for a finished operation carrying `error`, else None."""
    error = operation.get("error")
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else str(error)
    code = f" (code {error['code']})" if isinstance(error, dict) and "code" in error else ""
    return ProviderError(f"{provider}: the operation failed: {message or error}{code}", provider=provider)


def blocked(provider: str, reasons: list[str]) -> ProviderError:
    quoted = "; ".join(f'"{r}"' for r in reasons) or "no reason given"
    return ProviderError(f"{provider}: the video was blocked by Google's safety filters: {quoted}. Blocked "
                         "videos are not charged; rephrase the prompt or change the input images",
                         provider=provider)


class GeminiProvider(HttpProvider):
    """Veo 3.1 through the Gemini API, with an API key from GEMINI_API_KEY (or GOOGLE_API_KEY)."""

    name = "gemini"
    default_model = "veo-3.1-generate-preview"
    default_base_url = "https://generativelanguage.googleapis.com"
    official_hosts = ("generativelanguage.googleapis.com",)
    key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    trusted_suffixes = (".googleapis.com", ".googleusercontent.com")
    default_concurrency = 2
    default_rpm = 10  # the preview models' published quota
    extension_needs_handle = True
    """Gemini extends only files it generated (kept 2 days): plan regenerates a source whose handle expired."""

    def capabilities(self, model: str) -> Capabilities:
        """Known models' limits; an unknown name gets the standard model's."""
        return MODELS.get(model, STANDARD)

    def price(self, job: RenderJob) -> Price | None:
        """USD for the seconds the job generates: its duration, or 7 s at 720p for an extension."""
        rate = per_second(self.name, job.model, "720p" if job.extends else job.resolution, audio=job.audio)
        if rate is None:
            return None
        return Price(round(rate * (EXTENSION_SECONDS if job.extends else job.duration), 4))

    def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key()}

    # ---- the wire -----------------------------------------------------------------------------

    def request_body(self, job: RenderJob, ctx: RenderContext) -> dict[str, Any]:
        """`{"instances": [one instance], "parameters": {...}}` for `job`."""
        instance: dict[str, Any] = {"prompt": job.prompt}
        parameters: dict[str, Any] = {"sampleCount": 1}
        if job.extends:
            instance["video"] = self.source_video(job, ctx)
            parameters["resolution"] = "720p"
        else:
            parameters.update(aspectRatio=job.aspect_ratio, resolution=job.resolution,
                              durationSeconds=job.duration)
            if job.first_frame:
                instance["image"] = inline_image(ctx, job.first_frame, self.name)
            if job.last_frame:
                instance["lastFrame"] = inline_image(ctx, job.last_frame, self.name)
            if job.references:
                instance["referenceImages"] = [{"image": inline_image(ctx, d, self.name), "referenceType": "asset"}
                                               for d in job.references]
        if job.negative_prompt:
            parameters["negativePrompt"] = job.negative_prompt
        if job.seed is not None:
            parameters["seed"] = job.seed
        return {"instances": [instance], "parameters": parameters}

    def source_video(self, job: RenderJob, ctx: RenderContext) -> dict[str, Any]:
        """The Gemini file URI of the clip `job` extends, from the handle its render returned."""
        assert job.extends is not None
        handle = ctx.handles.get(job.extends) or {}
        source = f"the source clip ({job.extends[:12]})"
        if not handle.get("uri"):
            raise ProviderError(f"{self.name}: cannot extend {source}: it has no Gemini file handle (it was not "
                                "generated through the Gemini API by this cache). Gemini extends only videos it "
                                "generated in the last 2 days: regenerate the source shot with provider "
                                "'gemini' (for example with a new take)", provider=self.name)
        expires = handle.get("expires")
        if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= datetime.now(timezone.utc):
            raise ProviderError(f"{self.name}: cannot extend {source}: its Gemini file expired at {expires} "
                                "(Google keeps generated videos for 2 days): regenerate the source shot "
                                "(for example with a new take), then build again", provider=self.name)
        return {"uri": handle["uri"]}

    def submit_url(self, model: str) -> str:
        return f"{self.base_url}/v1beta/models/{model}:predictLongRunning"

    def submit(self, job: RenderJob, ctx: RenderContext) -> str:
        body = self.request_body(job, ctx)
        response = self.request("POST", self.submit_url(job.model), ctx, limited=True, json=body,
                                headers=self.headers())
        name = response_json(response, self.name).get("name")
        if not isinstance(name, str) or not name:
            raise ProviderError(f"{self.name}: the API accepted the job but returned no operation name",
                                provider=self.name)
        return name

    def poll(self, operation: str, job: RenderJob, ctx: RenderContext) -> tuple[Any | None, float | None]:
        response = self.request("GET", f"{self.base_url}/v1beta/{operation}", ctx, headers=self.headers(),
                                max_bytes=self.inline_limit(job))
        return self.finished(response_json(response, self.name))

    @staticmethod
    def finished(operation: dict[str, Any]) -> tuple[dict[str, Any] | None, float | None]:
        """(the operation if done, else None; progress from its metadata if it reports any)."""
        if operation.get("done"):
            return operation, None
        metadata = operation.get("metadata") or {}
        percent = metadata.get("progressPercent", metadata.get("progress")) if isinstance(metadata, dict) else None
        return None, (min(1.0, float(percent) / 100) if isinstance(percent, int | float) else None)

    def outcome(self, finished: dict[str, Any]) -> dict[str, Any]:
        """The first generated video (`{"uri"}` or inline bytes), or why there is none."""
        if (error := operation_error(self.name, finished)) is not None:
            raise error
        response = finished.get("response") or {}
        if video := self.first_video(response):
            return video
        if (reasons := rai_reasons(response)) is not None:
            raise blocked(self.name, reasons)
        raise ProviderError(f"{self.name}: the operation finished without a video: "
                            f"{str(response)[:300]}", provider=self.name)

    @staticmethod
    def first_video(response: dict[str, Any]) -> dict[str, Any] | None:
        """`generateVideoResponse.generatedSamples[0].video`, if there is one."""
        samples = (response.get("generateVideoResponse") or {}).get("generatedSamples") or []
        return (samples[0].get("video") or None) if samples and isinstance(samples[0], dict) else None

    def fetch(self, output: dict[str, Any], job: RenderJob, dest: Path, ctx: RenderContext) -> dict[str, Any] | None:
        """Download the file (the handle is its URI, kept 2 days), or write inline bytes."""
        if uri := output.get("uri"):
            self.download(uri, dest, ctx, self.headers(), job)
            return {"uri": uri, "expires": utc_iso(datetime.now(timezone.utc) + FILE_LIFETIME)}
        data = output.get("encodedVideo") or output.get("bytesBase64Encoded")
        if not data:
            raise ProviderError(f"{self.name}: the video has neither a URI nor bytes", provider=self.name)
        write_mp4(base64.b64decode(data), dest, self.name)
        return None
