"""Vertex AI: Veo 3.1 with an OAuth token, polled through fetchPredictOperation.

    POST {base}/v1/projects/{P}/locations/{L}/publishers/google/models/{M}:predictLongRunning
    POST {base}/v1/{operation up to /operations/}:fetchPredictOperation   {"operationName": op}
    response.videos[0].bytesBase64Encoded                      (inline, the default)
    response.videos[0].gcsUri  via  {storage}/storage/v1/b/{bucket}/o/{object}?alt=media
                                                               (with `storage_uri` set)

The body is the Gemini API's (see storyboard.providers.gemini) plus what only Vertex takes:
`generateAudio`, and `storageUri` when the table sets `storage_uri`. Extension sends the
source clip itself, inline (or its `gcsUri` when its handle has one), so it needs no
expiring handle; Vertex extends clips of 1–30 s, so the total stays at most 37 s.

Credentials: VERTEX_ACCESS_TOKEN, else `gcloud auth print-access-token` when the Google Cloud
CLI is installed (the token is cached for 45 minutes; they live an hour). Project and location
come from the `[providers.vertex]` table, else GOOGLE_CLOUD_PROJECT / GOOGLE_CLOUD_LOCATION
(default us-central1). STORYBOARD_VERTEX_BASE_URL and STORYBOARD_VERTEX_STORAGE_BASE_URL point
the API and the storage download elsewhere (the fake server, a proxy).

Prices: no Vertex price table was found; the Gemini API's are assumed, and silent output is
priced like output with audio (storyboard/data/prices.json). Capabilities otherwise follow
the Gemini API's (same prompt limit assumed).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from storyboard.errors import MissingKeyError, ProviderError
from storyboard.job import EXTENSION_SECONDS, Capabilities, RenderContext, RenderJob
from storyboard.providers import ProviderSettings
from storyboard.providers._hosts import Destination
from storyboard.providers._http import response_json
from storyboard.providers.gemini import STANDARD, GeminiProvider

TOKEN_LIFETIME = 45 * 60.0

VERTEX = replace(STANDARD, audio_control=True, max_extended_seconds=30 + EXTENSION_SECONDS)
VERTEX_LITE = replace(VERTEX, resolutions=frozenset({"720p", "1080p"}), max_references=0, extension=False)

MODELS: dict[str, Capabilities] = {
    "veo-3.1-generate-001": VERTEX,
    "veo-3.1-fast-generate-001": VERTEX,
    "veo-3.1-generate-preview": VERTEX,
    "veo-3.1-fast-generate-preview": VERTEX,
    "veo-3.1-lite-generate-001": VERTEX_LITE,
}


class VertexSettings(ProviderSettings):
    """`[providers.vertex]`: the common settings plus where the project lives and writes."""

    project: str | None = None
    location: str | None = None
    storage_uri: str | None = None
    """A `gs://bucket/folder/` prefix: Vertex writes the video there instead of returning bytes."""
    storage_base_url: str | None = None
    """The GCS JSON API's base URL (default https://storage.googleapis.com)."""


class VertexProvider(GeminiProvider):
    """Veo 3.1 on Vertex AI, with an OAuth access token and a Google Cloud project."""

    name = "vertex"
    default_model = "veo-3.1-generate-001"
    key_env = ("VERTEX_ACCESS_TOKEN",)
    Settings = VertexSettings
    trusted_suffixes = (".googleapis.com",)
    official_hosts = ("aiplatform.googleapis.com", "*-aiplatform.googleapis.com")
    official_storage_hosts = ("storage.googleapis.com",)
    default_rpm = 10  # preview quota; the GA `-001` models allow 50, set `rpm` to use it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()

    # ---- configuration ----------------------------------------------------------------------

    @property
    def project(self) -> str:
        project = getattr(self.settings, "project", None) or self.env.get("GOOGLE_CLOUD_PROJECT", "").strip()
        if not project:
            raise MissingKeyError("vertex needs a Google Cloud project: set GOOGLE_CLOUD_PROJECT or "
                                  "`project` in [providers.vertex]")
        return project

    @property
    def location(self) -> str:
        return getattr(self.settings, "location", None) or self.env.get("GOOGLE_CLOUD_LOCATION") or "us-central1"

    @property
    def default_base_url(self) -> str:  # type: ignore[override]
        location = self.location
        return "https://aiplatform.googleapis.com" if location == "global" else f"https://{location}-aiplatform.googleapis.com"

    @property
    def storage_base_url(self) -> str:
        return (self.env.get("STORYBOARD_VERTEX_STORAGE_BASE_URL") or getattr(self.settings, "storage_base_url", None)
                or "https://storage.googleapis.com").rstrip("/")

    def capabilities(self, model: str) -> Capabilities:
        return MODELS.get(model, VERTEX)

    # ---- credentials --------------------------------------------------------------------------

    def api_key(self) -> str:
        """VERTEX_ACCESS_TOKEN, else a (cached) `gcloud auth print-access-token`."""
        if token := self.env.get("VERTEX_ACCESS_TOKEN", "").strip():
            return token
        with self._token_lock:
            if self._token and time.monotonic() < self._token[1]:
                return self._token[0]
            token = self._gcloud_token()
            self._token = (token, time.monotonic() + TOKEN_LIFETIME)
            return token

    def _gcloud_token(self) -> str:
        gcloud = shutil.which("gcloud", path=self.env.get("PATH"))
        if gcloud is None:
            raise MissingKeyError("vertex needs an OAuth access token: set VERTEX_ACCESS_TOKEN (for example to "
                                  "the output of `gcloud auth print-access-token`), or install the Google Cloud "
                                  "CLI and run `gcloud auth login`")
        try:
            done = subprocess.run([gcloud, "auth", "print-access-token"], capture_output=True, text=True,
                                  timeout=60, env=dict(self.env))
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MissingKeyError(f"vertex: `gcloud auth print-access-token` failed ({exc}); set "
                                  "VERTEX_ACCESS_TOKEN instead") from None
        token = done.stdout.strip()
        if done.returncode != 0 or not token:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise MissingKeyError(f"vertex: `gcloud auth print-access-token` failed: {last}; run "
                                  "`gcloud auth login` or set VERTEX_ACCESS_TOKEN")
        return token

    def check_key(self) -> None:
        self.api_key()
        _ = self.project

    def secrets(self) -> tuple[str, ...]:
        cached = (self._token[0],) if self._token else ()
        return super().secrets() + cached

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}", "x-goog-user-project": self.project}

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
        storage = httpx.URL(self.storage_base_url)
        return super().trusts(url) or (url.scheme, url.host, url.port) == (storage.scheme, storage.host, storage.port)

    # ---- the wire -----------------------------------------------------------------------------

    def request_body(self, job: RenderJob, ctx: RenderContext) -> dict[str, Any]:
        body = super().request_body(job, ctx)
        body["parameters"]["generateAudio"] = job.audio
        if storage := getattr(self.settings, "storage_uri", None):
            body["parameters"]["storageUri"] = storage
        return body

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

