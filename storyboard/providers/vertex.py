"""Vertex AI (Gemini Enterprise Agent Platform): Veo 3.1 with OAuth, polled through fetchPredictOperation.

    POST {base}/v1/projects/{P}/locations/{L}/publishers/google/models/{M}:predictLongRunning
    POST {base}/v1/{operation up to /operations/}:fetchPredictOperation   {"operationName": op}
    response.videos[0].bytesBase64Encoded                      (inline, the default)
    response.videos[0].gcsUri  via  {storage}/storage/v1/b/{bucket}/o/{object}?alt=media
                                                               (with `storage_uri` set)

The host follows the location as google-genai builds it (`endpoint`): `global` ->
aiplatform.googleapis.com, the multi-regions `us`/`eu` -> aiplatform.{us|eu}.rep.googleapis.com,
a region -> {region}-aiplatform.googleapis.com. `v1`, as Google's curl samples (the SDK's
v1beta1 has been seen to refuse the GA models).

The body is the Gemini API's (see storyboard.providers.gemini) plus what only Vertex takes:
`generateAudio`, `sampleCount`, which comes from the shot's takes (storyboard.takes: up to 4
candidates a request, every one kept; `sample_count` in the table is validated 1-4 and only 1 is
accepted), and the options (OPTIONS), set for every shot in `[providers.vertex]` or per shot as
`options = { ... }` (the shot's win): `storageUri` (`storage_uri`), `personGeneration`
(`person_generation`), `compressionQuality` (`compression_quality`) and `resizeMode`
(`resize_mode`, image-to-video only: sent only for a shot with a first frame, and refused at
validation on a shot's own `options` without one). The options that shape the clip are in its
cache key (RenderJob.options), so changing one renders again; `storage_uri` is not
(storyboard.job.UNKEYED_OPTIONS: it moves the clip, not its pixels). Values go out in the REST
reference's lower case (the SDK sends the enum names, `PAD`; both are taken).
Extension sends the source clip itself, inline (or its `gcsUri` when its handle has one), so it
needs no expiring handle; Vertex extends clips of 1-30 s, so the total stays at most 37 s.

Credentials (storyboard.providers._google_auth): VERTEX_ACCESS_TOKEN if set (used as is), else
Application Default Credentials through google-auth, refreshed 5 minutes before they expire.
`x-goog-user-project` is sent only when `quota_project` (or GOOGLE_CLOUD_QUOTA_PROJECT) or the
credentials name a quota project. Project: `[providers.vertex] project`, GOOGLE_CLOUD_PROJECT,
else the service account's own. Location: the table, GOOGLE_CLOUD_LOCATION, else us-central1.
STORYBOARD_VERTEX_BASE_URL and STORYBOARD_VERTEX_STORAGE_BASE_URL point the API and the storage
download elsewhere (the fake server, a proxy).

Prices: USD per second from Vertex's pricing page (google-2026.md §2.7), with and without audio
(storyboard/data/prices.json). Capabilities otherwise follow the Gemini API's (same prompt limit
assumed).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import quote

from storyboard.errors import ProviderError
from storyboard.job import EXTENSION_SECONDS, Capabilities, RenderContext, RenderJob
from storyboard.providers import ProviderSettings
from storyboard.providers._cloud import CloudCredentials
from storyboard.providers._hosts import Destination
from storyboard.providers._http import response_json
from storyboard.providers.gemini import STANDARD, GeminiProvider, table
from storyboard.providers.settings import Check

if TYPE_CHECKING:
    import httpx  # imported when a request is made: a plan never needs it

    from storyboard.model import Shot

MULTI_REGIONS = ("us", "eu")

VERTEX = replace(STANDARD, audio_control=True, max_extended_seconds=30 + EXTENSION_SECONDS)
VERTEX_LITE = replace(VERTEX, resolutions=frozenset({"720p", "1080p"}), max_references=0, extension=False)

MODELS: dict[str, Capabilities] = {
    "veo-3.1-generate-001": VERTEX,
    "veo-3.1-fast-generate-001": VERTEX,
    "veo-3.1-lite-generate-001": VERTEX_LITE,
    "veo-3.1-generate-preview": VERTEX,
    "veo-3.1-fast-generate-preview": VERTEX,
}
"""The current ids first (Lite is still preview); the previews left Vertex on 2026-04-02 (kept for old files)."""


def endpoint(location: str) -> str:
    """The API's base URL for `location`, as google-genai builds it."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in MULTI_REGIONS:
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


OPTIONS = {"person_generation": "personGeneration", "resize_mode": "resizeMode",
           "compression_quality": "compressionQuality", "storage_uri": "storageUri"}
"""Vertex's options -> their names in `parameters` (VideoGenerationModelParams; google-2026.md §2.4)."""


def _gs_prefix(value: str | None) -> str | None:
    """`value` when it is a `gs://BUCKET/...` prefix (or None)."""
    if value is not None and (not value.startswith("gs://") or not value[5:].split("/")[0]):
        raise ValueError(f"{value!r} is not a Cloud Storage prefix: write it as gs://BUCKET/FOLDER/")
    return value


def _one_sample(value: int) -> int:
    """`value` when it is 1: more videos a request belong in `takes`, which keeps them all."""
    if not 1 <= value <= 4:
        raise ValueError(f"{value} is out of range: Vertex returns 1 to 4 videos a request")
    if value > 1:
        raise ValueError(f"{value} videos a request here would pay for {value} and keep one: set "
                         f"`takes = {value}` on the shot instead, which keeps every candidate (sampleCount follows it)")
    return value


@dataclass(frozen=True, kw_only=True)
class VertexOptions:
    """Veo's options on Vertex, for one shot (`options = {...}`) or every shot (`[providers.vertex]`)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}
    image_to_video_only: ClassVar[frozenset[str]] = frozenset({"resize_mode"})

    person_generation: Literal["allow_adult", "dont_allow", "allow_all"] | None = None
    """Which people may appear: adults only (Vertex's default), nobody, or anyone (allow-listed projects)."""
    resize_mode: Literal["pad", "crop"] | None = None
    """How a first frame of another shape fits the video: padded (Vertex's default) or cropped."""
    compression_quality: Literal["optimized", "lossless"] | None = None
    """The video's encoding: optimized (Vertex's default) or lossless (larger files)."""
    storage_uri: Annotated[str | None, Check(_gs_prefix)] = None
    """A `gs://bucket/folder/` prefix: Vertex writes the video there instead of returning bytes."""


@dataclass(frozen=True, kw_only=True)
class VertexSettings(ProviderSettings, VertexOptions):
    """`[providers.vertex]`: the common settings plus the project, where it writes, and Veo's options."""

    project: str | None = None
    location: str | None = None
    quota_project: str | None = None
    """The project billed for quota (`x-goog-user-project`); default: the credentials' own, if any."""
    storage_base_url: str | None = None
    """The GCS JSON API's base URL (default https://storage.googleapis.com)."""
    sample_count: Annotated[int, Check(_one_sample)] = 1


class VertexProvider(CloudCredentials, GeminiProvider):
    """Veo 3.1 on Vertex AI, with Application Default Credentials and a Google Cloud project.

    Credentials: storyboard.providers._cloud.CloudCredentials (`credentials` and `clock`
    arguments for tests).
    """

    name = "vertex"
    default_model = "veo-3.1-generate-001"
    key_env = ("VERTEX_ACCESS_TOKEN",)
    Settings = VertexSettings
    Options = VertexOptions
    trusted_suffixes = (".googleapis.com",)
    official_hosts = ("aiplatform.googleapis.com", "*-aiplatform.googleapis.com",
                      *(f"aiplatform.{region}.rep.googleapis.com" for region in MULTI_REGIONS))
    official_storage_hosts = ("storage.googleapis.com",)
    default_rpm = 50  # the GA `-001` models' quota (the previews had 10)

    # ---- configuration ----------------------------------------------------------------------

    @property
    def project(self) -> str:
        """The table's `project`, GOOGLE_CLOUD_PROJECT, else the one the credentials name."""
        return self.cloud_project()

    @property
    def location(self) -> str:
        return getattr(self.settings, "location", None) or self.env.get("GOOGLE_CLOUD_LOCATION") or "us-central1"

    @property
    def default_base_url(self) -> str:  # type: ignore[override]
        return endpoint(self.location)

    @property
    def storage_base_url(self) -> str:
        return (self.env.get("STORYBOARD_VERTEX_STORAGE_BASE_URL") or getattr(self.settings, "storage_base_url", None)
                or "https://storage.googleapis.com").rstrip("/")

    def capabilities(self, model: str) -> Capabilities:
        return MODELS.get(model, VERTEX)

    # ---- credentials (storyboard.providers._cloud.CloudCredentials) ---------------------------------

    def api_key(self) -> str:
        """VERTEX_ACCESS_TOKEN, else a token from Application Default Credentials (fresh for 5 minutes)."""
        return self.cloud_token()

    def check_key(self) -> None:
        self.check_cloud_credentials()

    def secrets(self) -> tuple[str, ...]:
        return super().secrets() + self.cloud_secrets()

    @property
    def quota_project(self) -> str | None:
        return self.cloud_quota_project()

    def headers(self) -> dict[str, str]:
        return self.cloud_headers()

    def destinations(self) -> list[Destination]:
        """The API (its host shaped by `location` unless `base_url` is set) and, with `storage_uri`, GCS."""
        found = super().destinations()
        api = found[0]
        if api.source == "default":
            location = getattr(self.settings, "location", None)
            source = "board" if location else "env" if self.env.get("GOOGLE_CLOUD_LOCATION") else "default"
            found[0] = Destination("location" if location else "base_url", api.url, source, api.official)
        if getattr(self.settings, "storage_uri", None) or getattr(self.settings, "storage_base_url", None):
            env = self.env.get("STORYBOARD_VERTEX_STORAGE_BASE_URL")
            source = "env" if env else "board" if getattr(self.settings, "storage_base_url", None) else "default"
            found.append(Destination("storage_base_url", self.storage_base_url, source, self.official_storage_hosts))
        return found

    def trusts(self, url: httpx.URL) -> bool:
        import httpx

        storage = httpx.URL(self.storage_base_url)
        return super().trusts(url) or (url.scheme, url.host, url.port) == (storage.scheme, storage.host, storage.port)

    # ---- the wire -----------------------------------------------------------------------------

    def job_options(self, shot: Shot) -> tuple[tuple[str, Any], ...]:
        """The options that apply to `shot`: the table's under the shot's own; resize_mode only with a first frame."""
        chosen = {name: getattr(self.settings, name, None) for name in OPTIONS} | dict(shot.options)
        return tuple(sorted((name, value) for name, value in chosen.items() if value is not None and (
            name not in VertexOptions.image_to_video_only or shot.first_frame is not None)))

    def request_body(self, job: RenderJob, ctx: RenderContext) -> dict[str, Any]:
        """The Gemini body plus `generateAudio` and the Vertex-only options (the table's, then the job's)."""
        body = super().request_body(job, ctx)
        parameters, settings = body["parameters"], self.settings
        parameters["generateAudio"] = job.audio
        parameters["sampleCount"] = ctx.samples  # a batch of the shot's takes (storyboard.takes)
        for field, wire in (("storage_uri", "storageUri"), ("person_generation", "personGeneration"),
                            ("compression_quality", "compressionQuality")):
            if (value := getattr(settings, field, None)) is not None:
                parameters[wire] = value
        resize = getattr(settings, "resize_mode", None)
        if resize is not None and "image" in body["instances"][0]:
            parameters["resizeMode"] = resize
        self.send_options(job, body)
        return body

    @staticmethod
    def send_options(job: RenderJob, body: dict[str, Any]) -> None:
        """The job's options (the shot's own over the table's) into `parameters`, by Vertex's names."""
        for name, value in job.options:
            if name not in VertexOptions.image_to_video_only or "image" in body["instances"][0]:
                body["parameters"][OPTIONS[name]] = value

    def source_video(self, job: RenderJob, ctx: RenderContext) -> dict[str, Any]:
        """The clip to extend: its gcsUri when its handle has one, else its bytes inline."""
        assert job.extends is not None
        handle = ctx.handles.get(job.extends) or {}
        if handle.get("gcsUri"):
            return {"gcsUri": handle["gcsUri"], "mimeType": "video/mp4"}
        data = ctx.input_path(job.extends).read_bytes()
        return {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": "video/mp4"}

    def model_path(self, model: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/publishers/google/models/{model}"

    def submit_url(self, model: str) -> str:
        return f"{self.base_url}/v1/{self.model_path(model)}:predictLongRunning"

    def poll(self, operation: str, job: RenderJob, ctx: RenderContext) -> tuple[Any | None, float | None]:
        model = operation.split("/operations/")[0] if "/operations/" in operation else self.model_path(job.model)
        response = self.request("POST", f"{self.base_url}/v1/{model}:fetchPredictOperation", ctx,
                                json={"operationName": operation}, headers=self.headers(),
                                max_bytes=self.inline_limit(job))
        return self.finished(response_json(response, self.name))

    max_samples = 4

    def outcomes(self, finished: dict[str, Any]) -> list[dict[str, Any]]:
        """Every video of a `sampleCount` answer, in order (errors and blocks as `outcome` says them)."""
        first = self.outcome(finished)
        videos = table(finished.get("response")).get("videos")
        return [v for v in videos if isinstance(v, dict) and v] if isinstance(videos, list) else [first]

    @staticmethod
    def first_video(response: dict[str, Any]) -> dict[str, Any] | None:
        """`videos[0]`: `{"gcsUri"}` or `{"bytesBase64Encoded"}`, if there is one."""
        videos = response.get("videos")
        return videos[0] if isinstance(videos, list) and videos and isinstance(videos[0], dict) and videos[0] else None

    def fetch(self, output: dict[str, Any], job: RenderJob, dest: Path, ctx: RenderContext) -> dict[str, Any] | None:
        """Download a gs:// object through the GCS JSON API, or write inline bytes."""
        uri = output.get("gcsUri")
        if not isinstance(uri, str) or not uri:
            return super().fetch(output, job, dest, ctx)
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        if not uri.startswith("gs://") or not bucket or not name:
            raise ProviderError(f"vertex: cannot read the output location {uri!r}", provider=self.name)
        url = f"{self.storage_base_url}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media"
        self.download(url, dest, ctx, self.headers(), job)
        return {"gcsUri": uri}

