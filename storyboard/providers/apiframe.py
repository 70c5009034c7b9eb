"""Apiframe v2: Veo 3.1 as an async job, images published through Apiframe's own upload endpoint.

    POST {base}/v2/uploads           X-API-Key, multipart `file`  -> {"url", "expiresAt", ...}
    POST {base}/v2/videos/generate   X-API-Key, Idempotency-Key   -> 202 {"jobId", "status"}
    GET  {base}/v2/jobs/{jobId}      QUEUED | PROCESSING (progress 0-100) | COMPLETED | FAILED | CANCELLED
    GET  the result URL              (a public CDN link: the key goes only to the API's own origin)

Decisions where the sources are silent or disagree (docs/providers.md §3):

- The body carries only documented keys, nulls omitted: the schema is `additionalProperties:
  false`, so anything else is a 400. No webhook is requested; the job is polled.
- Local images (assets and handed-off frames) are uploaded just before the submit, every time:
  upload URLs expire after 1-2 h, so they are never cached across builds.
- The shot's cache key is sent as `Idempotency-Key`, so a submit whose answer was lost (a
  timeout, a kill before the journal write) returns the job already paid for. Apiframe
  replays a key for 24 h, a failed job included; so after a FAILED, CANCELLED or expired job
  the journal keeps `{"failed_job": id}` and the next submit sends `<key>-<that id>`: building
  again really tries again. Replays send fresh upload URLs under the old key; the docs say the
  original job comes back (not that differing bodies are refused).
- `result` is untyped in the OpenAPI file. A video URL is read from, in order: `videos[0]`
  (a string or `{"url"}`), `outputs[0]` (the same), `video_url`, `videoUrl`, `url`, `video`.
- Prices are credits per clip from the model pages (storyboard/data/prices_apiframe.json):
  by duration and audio, not by resolution. veo-3.1-lite has no published table (None).
- Capabilities: no extension and no 4k; prompt <= 4,000 characters. The negative prompt's
  2,000-character limit has no Capabilities field yet, so it is checked here, before any upload.
- A 402 names the credits required and available and is not retried; a 400 quotes `details`.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.cache import cache_key
from storyboard.errors import ProviderError
from storyboard.job import Capabilities, Price, RenderContext, RenderJob, RenderResult, key_components
from storyboard.providers._base import HttpProvider
from storyboard.providers._http import raise_for_api_error, response_json, send, utc_iso, with_retries
from storyboard.providers._transfer import json_or_none
from storyboard.sniff import sniff

if TYPE_CHECKING:
    import httpx  # imported when a request is made: a plan never needs it

log = logging.getLogger(__name__)

NEGATIVE_PROMPT_CHARS = 2000
STANDARD = Capabilities(extension=False, resolutions=frozenset({"720p", "1080p"}), max_prompt_chars=4000)
LITE = replace(STANDARD, max_references=0, audio_control=False)
"""veo-3.1-lite: its schema has no `generate_audio` and no `reference_images`."""

MODELS: dict[str, Capabilities] = {"veo-3.1": STANDARD, "veo-3.1-fast": STANDARD, "veo-3.1-lite": LITE}
RUNNING = frozenset({"QUEUED", "PROCESSING", "PENDING", "RUNNING"})
_MIME = {"png": "image/png", "jpeg": "image/jpeg"}


@functools.lru_cache(maxsize=1)
def credit_table() -> dict[str, Any]:
    """storyboard/data/prices_apiframe.json: credits by model, audio|silent and duration."""
    return json.loads(resources.files("storyboard").joinpath("data/prices_apiframe.json").read_text())


def result_url(result: Any) -> str | None:
    """The video URL in a finished job's untyped `result`, in any of the forms read (see above)."""
    if isinstance(result, str):
        return result if result.startswith(("https://", "http://")) else None
    if not isinstance(result, dict):
        return None
    found: list[Any] = []
    for key in ("videos", "outputs"):
        items = result.get(key)
        if isinstance(items, list) and items:
            found.append(items[0])
    found += [result.get(key) for key in ("video_url", "videoUrl", "url", "video")]
    for item in found:
        if isinstance(item, dict):
            item = item.get("url") or item.get("video_url") or item.get("videoUrl")
        if isinstance(item, str) and item.startswith(("https://", "http://")):
            return item
    return None


class JobFailed(ProviderError):
    """A job Apiframe finished without a usable video; its id keys the next, fresh submit."""

    def __init__(self, message: str, job_id: str, **kwargs: Any) -> None:
        super().__init__(message, provider="apiframe", **kwargs)
        self.job_id = job_id


class ApiframeProvider(HttpProvider):
    """Veo 3.1 through Apiframe v2, with an API key from APIFRAME_API_KEY; prices in credits."""

    name = "apiframe"
    default_model = "veo-3.1"
    default_base_url = "https://api.apiframe.ai"
    official_hosts = ("api.apiframe.ai",)
    key_env = ("APIFRAME_API_KEY",)
    default_concurrency = 4
    default_rpm = 60  # a third-party note says 500/min; stay well under it
    default_poll_interval = 5.0

    def capabilities(self, model: str) -> Capabilities:
        """Known models' limits; an unknown name gets the standard model's."""
        return MODELS.get(model, STANDARD)

    def price(self, job: RenderJob) -> Price | None:
        """Credits per clip, by model, duration and audio; None for a model without a table."""
        table = credit_table().get(job.model)
        if not isinstance(table, dict):
            return None
        credits = table.get("audio" if job.audio else "silent", {}).get(str(job.duration))
        return None if credits is None else Price(credits, "credits")

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key()}

    def render(self, job: RenderJob, dest: Path, ctx: RenderContext) -> RenderResult:
        """HttpProvider.render; a failed job is noted so the next build does not replay it."""
        try:
            return super().render(job, dest, ctx)
        except JobFailed as exc:
            ctx.journal.write({"provider": self.name, "failed_job": exc.job_id, "failed": utc_iso()})
            raise

    # ---- the wire -----------------------------------------------------------------------------

    def call(self, method: str, url: str, ctx: RenderContext, *, limited: bool = False,
             **kwargs: Any) -> httpx.Response:
        """One API call with retries, reading Apiframe's 402 and 400 bodies for a better message."""

        def attempt() -> httpx.Response:
            if limited:
                self.limiter.acquire(ctx.sleep)
            response = send(self.client, method, url, provider=self.name, limits=self.limits, **kwargs)
            self.check(response)
            return response

        return with_retries(attempt, provider=self.name, sleep=ctx.sleep, rng=self.rng, policy=self.policy,
                            secrets=self.secrets())

    def check(self, response: httpx.Response) -> None:
        """raise_for_api_error, plus the credits of a 402 and the field `details` of a 400."""
        if response.is_success:
            return
        response.read()
        body = json_or_none(response)
        body = body if isinstance(body, dict) else {}
        if response.status_code == 402:
            need, have = body.get("creditsRequired"), body.get("creditsAvailable")
            counts = f": {need} credits required, {have} available" if need is not None else ""
            raise ProviderError(f"{self.name}: {body.get('error') or 'Insufficient credits'}{counts}; top up the "
                                "Apiframe account, then build again", provider=self.name, status=402)
        try:
            raise_for_api_error(response, self.name)
        except ProviderError as exc:
            details = body.get("details")
            if isinstance(details, dict) and details:
                said = "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                                 for k, v in details.items())
                raise ProviderError(f"{exc.message} ({said})", provider=self.name, status=exc.status,
                                    retryable=exc.retryable, retry_after=exc.retry_after) from None
            raise

    def upload(self, digest: str, ctx: RenderContext) -> str:
        """Publish one local image through POST /v2/uploads; returns its (1-2 h) URL."""
        path = ctx.input_path(digest)
        kind = sniff(path) or ""
        if kind not in _MIME:
            raise ProviderError(f"{self.name}: input {digest[:12]} is not a PNG or JPEG image", provider=self.name)
        files = {"file": (f"{digest[:16]}.{'jpg' if kind == 'jpeg' else kind}", path.read_bytes(), _MIME[kind])}
        response = self.call("POST", f"{self.base_url}/v2/uploads", ctx, limited=True, files=files,
                             headers=self.headers())
        url = response_json(response, self.name).get("url")
        if not isinstance(url, str) or not url:
            raise ProviderError(f"{self.name}: the upload of input {digest[:12]} returned no URL", provider=self.name)
        return url

    def request_body(self, job: RenderJob, ctx: RenderContext) -> dict[str, Any]:
        """The generate body, uploading the job's images first (each distinct image once)."""
        if job.negative_prompt and len(job.negative_prompt) > NEGATIVE_PROMPT_CHARS:
            raise ProviderError(f"{self.name}: the negative prompt is {len(job.negative_prompt)} characters; "
                                f"Apiframe accepts at most {NEGATIVE_PROMPT_CHARS}: shorten negative_prompt",
                                provider=self.name)
        if job.extends:
            raise ProviderError(f"{self.name}: Apiframe cannot extend a clip", provider=self.name)
        urls: dict[str, str] = {}
        for digest in (job.first_frame, job.last_frame, *job.references):
            if digest and digest not in urls:
                urls[digest] = self.upload(digest, ctx)
        params: dict[str, Any] = {"duration": job.duration, "aspect_ratio": job.aspect_ratio,
                                  "resolution": job.resolution}
        if self.capabilities(job.model).audio_control:
            params["generate_audio"] = job.audio
        optional = {"negative_prompt": job.negative_prompt, "seed": job.seed,
                    "image": urls.get(job.first_frame or ""), "last_frame": urls.get(job.last_frame or ""),
                    "reference_images": [urls[d] for d in job.references] or None}
        params.update({k: v for k, v in optional.items() if v is not None})
        return {"model": job.model, "prompt": job.prompt, "veoParams": params}

    def idempotency_key(self, job: RenderJob, ctx: RenderContext) -> str:
        """The shot's cache key; after a failed job, suffixed with its id so it is not replayed."""
        key = cache_key(key_components(job))
        entry = ctx.journal.read() or {}
        failed = entry.get("failed_job") if entry.get("provider") == self.name else None
        return f"{key}-{failed}" if failed else key

    def submit(self, job: RenderJob, ctx: RenderContext) -> str:
        body = self.request_body(job, ctx)
        headers = {**self.headers(), "Idempotency-Key": self.idempotency_key(job, ctx)}
        response = self.call("POST", f"{self.base_url}/v2/videos/generate", ctx, limited=True, json=body,
                             headers=headers)
        data = response_json(response, self.name)
        job_id = data.get("jobId") or data.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise ProviderError(f"{self.name}: the API accepted the job but returned no jobId", provider=self.name)
        return job_id

    def poll(self, operation: str, job: RenderJob, ctx: RenderContext) -> tuple[Any | None, float | None]:
        response = self.call("GET", f"{self.base_url}/v2/jobs/{operation}", ctx, headers=self.headers())
        data = response_json(response, self.name)
        found = data.get("job") if "status" not in data and isinstance(data.get("job"), dict) else data
        if str(found.get("status", "")).upper() in RUNNING:
            percent = found.get("progress")
            fraction = min(1.0, max(0.0, percent / 100)) if isinstance(percent, int | float) else None
            return None, fraction
        return {**found, "id": found.get("id") or operation}, None

    def outcome(self, finished: dict[str, Any]) -> dict[str, str]:
        """`{"id", "url"}` of a completed job; JobFailed for a failed, cancelled or expired one."""
        job_id, status = str(finished["id"]), str(finished.get("status", "")).upper()
        if status in ("FAILED", "ERROR"):
            raise JobFailed(f"{self.name}: job {job_id} failed: \"{finished.get('error') or 'no reason given'}\"; "
                            "the next build submits a new job", job_id)
        if status in ("CANCELLED", "CANCELED"):
            raise JobFailed(f"{self.name}: job {job_id} was cancelled; the next build submits a new job", job_id)
        if status != "COMPLETED":
            raise ProviderError(f"{self.name}: job {job_id} has an unknown status {status!r}", provider=self.name)
        if finished.get("expired"):
            raise JobFailed(f"{self.name}: the video of job {job_id} has expired (Apiframe keeps results for "
                            "24 h); the next build generates it again", job_id, status=404)
        url = result_url(finished.get("result"))
        if url is None:
            raise ProviderError(f"{self.name}: job {job_id} completed but its result has no video URL: "
                                f"{json.dumps(finished.get('result'))[:300]}", provider=self.name)
        return {"id": job_id, "url": url}

    def fetch(self, output: dict[str, str], job: RenderJob, dest: Path, ctx: RenderContext) -> dict[str, Any] | None:
        """Download the result; a 404 (purged) becomes JobFailed, so the next build submits afresh."""
        try:
            self.download(output["url"], dest, ctx, self.headers(), job)
        except ProviderError as exc:
            if exc.status != 404:
                raise
            raise JobFailed(f"{exc.message}; the video has expired, the next build generates it again",
                            output["id"], status=404) from exc
        return None
