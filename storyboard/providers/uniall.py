"""UniAll (docs.uniall.ai), a gateway to Veo 3.1 with JSON tasks that take media only as URLs.

    POST {base}/v1/video/generations   Authorization: Bearer UNIALL_API_KEY   -> a task id
    GET  {base}/v1/videos/{task_id}    until status is completed or failed
    GET  video_url | result.video_url | result.outputs[0]      (no key sent to other hosts)

`TaskGateway` is the part CometAPI shares (storyboard.providers.cometapi): Bearer auth, the
task poll (`queued` / `in_progress` / `completed` / `failed`, `progress` 0–100) and the
lenient readers of the undocumented bodies.

Decisions where the sources are silent or disagree (docs/providers.md §5, seed 003):

- base URL: https://api.uniall.ai, the "production gateway" in www.uniall.ai/v1/openapi.json
  (the Veo pages write `{BASE_URL}`); `base_url` or STORYBOARD_UNIALL_BASE_URL overrides it.
- model: the storyboard says `veo3.1` (default) or `veo3.1-fast`; the public tier name is
  `<model>-video-<resolution>` (`veo3.1-fast-video-1080p`). A full tier name is sent as is and
  allows only its own resolution. Other names are passed through with the standard limits.
- create response: documented as `{}`. The task id is read from `id`, `task_id`, `data.id`,
  `data.task_id` or a string `data`, in that order; none of them fails the shot, quoting the body.
- poll response: the sibling models' query pages; the body may also come wrapped in `data`.
  Finished means `completed` (or `succeeded`/`success`); failed means `failed` (or `error`,
  `cancelled`, `expired`), quoting `error.message`, `error`, `fail_reason` or `message`.
- body: `model`, `prompt`, `size` (the resolution) always; `aspect_ratio` and `duration` (an
  integer, as in every example, though the table says string) except for an extension, which
  sends `video` and neither (the extension example has no aspect ratio; the docs say duration
  is not used); `extra_body.generate_audio` always (explicit beats an upstream default),
  `negative_prompt` and `seed` when set.
- media: `image`, `last_image`, `images` and `video` are public URLs of the inputs, published
  through the upload target of the table (storyboard.providers._upload). Without one, the
  capabilities say `local_media=False` and validation rejects every shot that has an input.
- capabilities: the fast tiers take no reference images (docs). `images` must hold 2–3 URLs,
  so one reference fails before anything is uploaded or paid. 1080p/4k/references keep Veo's
  8 s rule although two UniAll examples send 6 s (unconfirmed, so the safe side). Extension:
  720p, and 37 s in all, the stricter of Gemini's and Vertex's limits, as the upstream is
  unknown (`generate_audio` exists only on Vertex); the result is the source plus 7 s.
- price: none was published, so `price()` is None and `plan` lists the shots as unpriced.
- No idempotency key is documented: a create is retried only when it provably never arrived; one
  whose answer was lost is journaled `uncertain` and not sent again without `build --resubmit`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar

from storyboard.errors import ProviderError
from storyboard.job import EXTENSION_SECONDS, Capabilities, Price, RenderContext, RenderJob
from storyboard.providers import ProviderSettings
from storyboard.providers._base import HttpProvider
from storyboard.providers._hosts import Destination
from storyboard.providers._http import response_json
from storyboard.providers._upload import UploadTarget, check_public_url
from storyboard.providers.settings import Check

DONE = frozenset({"completed", "succeeded", "success"})
FAILED = frozenset({"failed", "failure", "error", "cancelled", "canceled", "expired"})

STANDARD = Capabilities(max_extended_seconds=30 + EXTENSION_SECONDS)
FAST = replace(STANDARD, max_references=0)
MODELS: dict[str, Capabilities] = {"veo3.1": STANDARD, "veo3.1-fast": FAST}
PRICES: dict[str, float] = {}
"""USD per output second by model: UniAll publishes none yet, so every shot is unpriced."""
S3_HOSTS = ("s3.amazonaws.com", "*.s3.amazonaws.com", "s3.*.amazonaws.com", "*.s3.*.amazonaws.com")
"""AWS's own S3 endpoints: another `endpoint_url` (R2, MinIO) needs the user's --allow-base-url."""
TIER = re.compile(r"^(?P<family>.+)-video-(?P<resolution>720p|1080p|4k)$")

StorageValue = str | int | float | bool
StorageOption = StorageValue | dict[str, StorageValue]


def tier(model: str, resolution: str) -> str:
    """UniAll's public model name for `model` at `resolution` (a full tier name stays as it is)."""
    return model if TIER.match(model) else f"{model}-video-{resolution}"


# ---- what the task gateways share -------------------------------------------------------------


def task_of(body: dict[str, Any]) -> dict[str, Any]:
    """The task object in a response: the body, or its `data` when it wraps one."""
    data = body.get("data")
    return data if "status" not in body and isinstance(data, dict) else body


def task_id(body: dict[str, Any]) -> str | None:
    """The task id in a create response: `id`, `task_id`, `data.id`, `data.task_id` or `data`."""
    data = body.get("data")
    candidates = [body.get("id"), body.get("task_id")]
    if isinstance(data, dict):
        candidates += [data.get("id"), data.get("task_id")]
    candidates.append(data)
    return next((str(c) for c in candidates if isinstance(c, str | int) and not isinstance(c, bool) and str(c)),
                None)


def task_progress(task: dict[str, Any]) -> float | None:
    """`progress` (0–100, a number or a string like "40%") as a fraction, or None."""
    value = task.get("progress")
    if isinstance(value, str):
        value = value.strip().rstrip("%")
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0.0, min(1.0, float(value) / 100))
    return None


def task_error(task: dict[str, Any]) -> str:
    """Why a task failed, in the API's words."""
    error = task.get("error")
    if isinstance(error, dict):
        message = error.get("message") or error.get("msg")
        code = error.get("code")
        if message:
            return f"{message}" + (f" (code {code})" if code not in (None, "") else "")
    for candidate in (error, task.get("fail_reason"), task.get("failure_reason"), task.get("message")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return "no reason given"


def video_url(task: dict[str, Any]) -> str | None:
    """`video_url`, else `result.video_url`, else `result.outputs[0]` (a URL or `{"url"}`)."""
    result = task.get("result") if isinstance(task.get("result"), dict) else {}
    outputs = result.get("outputs") or []
    first = outputs[0] if isinstance(outputs, list) and outputs else None
    if isinstance(first, dict):
        first = first.get("url") or first.get("video_url")
    for candidate in (task.get("video_url"), result.get("video_url"), first):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


class TaskGateway(HttpProvider):
    """A gateway with OpenAI-style video tasks: Bearer key, task id, poll, a video URL."""

    default_poll_interval = 10.0
    poll_path = "/v1/videos/{id}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    def created(self, response: Any) -> str:
        """The task id from a create response, or a ProviderError quoting the body."""
        body = response_json(response, self.name)
        found = task_id(body)
        if found is None:
            raise ProviderError(f"{self.name}: the API accepted the job but its answer names no task id "
                                f"(looked for id, task_id, data.id): {str(body)[:300]}", provider=self.name)
        return found

    def poll(self, operation: str, job: RenderJob, ctx: RenderContext) -> tuple[Any | None, float | None]:
        url = self.base_url + self.poll_path.format(id=operation)
        task = task_of(response_json(self.request("GET", url, ctx, headers=self.headers()), self.name))
        status = str(task.get("status") or "").lower()
        if status in DONE or status in FAILED or (not status and task.get("error")):
            return (operation, task), None
        return None, task_progress(task)

    def outcome(self, finished: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        operation, task = finished
        if str(task.get("status") or "").lower() not in DONE:
            raise ProviderError(f"{self.name}: task {operation} failed: {task_error(task)}", provider=self.name)
        return finished

    def fetch(self, output: tuple[str, dict[str, Any]], job: RenderJob, dest: Path,
              ctx: RenderContext) -> dict[str, Any] | None:
        operation, task = output
        url = video_url(task) or self.content_url(operation)
        if url is None:
            raise ProviderError(f"{self.name}: task {operation} completed without a video URL: {str(task)[:300]}",
                                provider=self.name)
        self.download(url, dest, ctx, self.headers(), job)
        return None

    def content_url(self, operation: str) -> str | None:
        """Where to download a finished task that names no URL (None: nowhere)."""
        return None


# ---- UniAll -------------------------------------------------------------------------------------


def _both_or_neither(value: str | None, data: dict[str, Any]) -> str | None:
    """A checked `public_url`, given exactly when `upload` is (checked even when unset)."""
    if (value is None) != (data.get("upload") is None):
        raise ValueError('set both upload = "s3://bucket/prefix" and public_url = "https://…/{key}", or neither')
    return check_public_url(value) if value is not None else None


@dataclass(frozen=True, kw_only=True)
class UniAllSettings(ProviderSettings):
    """`[providers.uniall]`: the common settings plus where to publish inputs (all or none)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid", "validate_default": True}

    upload: str | None = None
    """An fsspec URL the inputs are uploaded to, e.g. `s3://bucket/prefix`."""
    public_url: Annotated[str | None, Check(_both_or_neither, with_data=True)] = None
    """How UniAll reads an uploaded object: a template with `{key}` (prefix/sha256.ext) or `{name}`."""
    storage_options: dict[str, StorageOption] = field(default_factory=dict)
    """Keyword arguments for the fsspec filesystem, when the environment cannot say it."""


class UniAllProvider(TaskGateway):
    """Veo 3.1 through UniAll, with an API key from UNIALL_API_KEY and an upload target for inputs."""

    name = "uniall"
    default_model = "veo3.1"
    default_base_url = "https://api.uniall.ai"
    official_hosts = ("api.uniall.ai",)
    key_env = ("UNIALL_API_KEY",)
    Settings = UniAllSettings
    default_concurrency = 2
    default_rpm = 10

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._target: UploadTarget | None = None
        self._target_lock = threading.Lock()

    def capabilities(self, model: str) -> Capabilities:
        """The family's limits (a full tier name allows one resolution); URL inputs need an upload target."""
        match = TIER.match(model)
        caps = MODELS.get(match["family"] if match else model, STANDARD)
        if match:
            caps = replace(caps, resolutions=frozenset({match["resolution"]}))
        if self.target is None:
            caps = replace(caps, local_media=False)
        return caps

    def price(self, job: RenderJob) -> Price | None:
        """USD for the generated seconds from PRICES, or None (UniAll publishes no prices yet)."""
        match = TIER.match(job.model)
        rate = PRICES.get(match["family"] if match else job.model)
        if rate is None:
            return None
        return Price(round(rate * (EXTENSION_SECONDS if job.extends else job.duration), 4))

    @property
    def target(self) -> UploadTarget | None:
        """The upload target of the table, built on first use; None when none is set."""
        settings = self.settings
        if getattr(settings, "upload", None) is None or getattr(settings, "public_url", None) is None:
            return None
        with self._target_lock:
            if self._target is None:
                self._target = UploadTarget(settings.upload, settings.public_url, settings.storage_options,
                                            provider=self.name)
            return self._target

    def publish(self, ctx: RenderContext, digest: str) -> str:
        """The public URL of input `digest`, uploading it first if it is not there yet."""
        target = self.target
        if target is None:
            raise ProviderError(f'{self.name} takes images and clips only as URLs: set upload = "s3://…" and '
                                f"public_url in [providers.{self.name}]", provider=self.name)
        return target.publish(ctx.input_path(digest), digest)

    def destinations(self) -> list[Destination]:
        """The API, and an object-store endpoint the table names: the environment's credentials sign for it."""
        found = super().destinations()
        options = getattr(self.settings, "storage_options", {})
        nested = options.get("client_kwargs")
        endpoint = options.get("endpoint_url") or (nested.get("endpoint_url") if isinstance(nested, dict) else None)
        if isinstance(endpoint, str) and endpoint:
            found.append(Destination("storage_options.endpoint_url", endpoint, "board", S3_HOSTS))
        return found

    def secrets(self) -> tuple[str, ...]:
        """The API key and the upload target's credentials, to scrub from messages."""
        options = getattr(self.settings, "storage_options", {})
        found = [self.env.get(var, "").strip() for var in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
        found += [str(options[k]) for k in ("secret", "token", "password", "account_key") if k in options]
        return super().secrets() + tuple(s for s in found if s)

    # ---- the wire -----------------------------------------------------------------------------

    def request_body(self, job: RenderJob, ctx: RenderContext) -> dict[str, Any]:
        """The JSON body of `POST /v1/video/generations` for `job`, its inputs published first."""
        if job.references and not 2 <= len(job.references) <= 3:
            raise ProviderError(f"{self.name}: reference images go in `images`, which takes 2 or 3 URLs, but the "
                                f"shot has {len(job.references)}; add another reference, or use the image as "
                                "first_frame instead", provider=self.name)
        body: dict[str, Any] = {"model": tier(job.model, job.resolution), "prompt": job.prompt,
                                "size": job.resolution}
        if job.extends or job.first_frame or job.last_frame or job.references:
            ctx.progress("uploading", None)
        if job.extends:
            body["video"] = self.publish(ctx, job.extends)
        else:
            body.update(aspect_ratio=job.aspect_ratio, duration=job.duration)
            if job.first_frame:
                body["image"] = self.publish(ctx, job.first_frame)
            if job.last_frame:
                body["last_image"] = self.publish(ctx, job.last_frame)
            if job.references:
                body["images"] = [self.publish(ctx, d) for d in job.references]
        extra: dict[str, Any] = {"generate_audio": job.audio}
        if job.negative_prompt:
            extra["negative_prompt"] = job.negative_prompt
        if job.seed is not None:
            extra["seed"] = job.seed
        body["extra_body"] = extra
        return body

    def submit(self, job: RenderJob, ctx: RenderContext) -> str:
        body = self.request_body(job, ctx)
        response = self.request("POST", f"{self.base_url}/v1/video/generations", ctx, limited=True, json=body,
                                headers=self.headers())
        return self.created(response)
