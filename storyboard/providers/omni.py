"""Gemini Omni Flash through the Interactions API, on the Gemini API or on Agent Platform.

    Gemini API      POST {base}/v1beta/interactions                                   x-goog-api-key
                    GET  {base}/v1beta/interactions/{id}
    Agent Platform  POST {base}/v1beta1/projects/{P}/locations/global/interactions    Bearer token
                    GET  {base}/v1beta1/projects/{P}/locations/global/interactions/{id}

Every job runs in the background (`background: true`, `store: true`): the create returns an
interaction id at once, HttpProvider journals it before anything else happens, and the
interaction is polled until it is terminal. A killed build resumes the journaled id instead of
creating (and paying for) another. The body is built in storyboard.providers.omni_body.

Decisions (google-2026.md §1):

- platform: `[providers.omni] platform = "gemini"` (default; key from GEMINI_API_KEY or
  GOOGLE_API_KEY, sent as the x-goog-api-key header only, never `?key=`) or `"vertex"`
  (Agent Platform, as the vertex provider authenticates: Application Default Credentials,
  refreshed before expiry, with VERTEX_ACCESS_TOKEN as an override, and `x-goog-user-project`
  only when a quota project is named; project from `project`, GOOGLE_CLOUD_PROJECT or the
  credentials. Omni is served from `locations/global` only, so the host is the global one,
  aiplatform.googleapis.com, whatever GOOGLE_CLOUD_LOCATION says).
- outcome: `completed` with a video block in a `model_output` step is success (steps are read by
  type, never by index). `completed` without one is a safety block (or Agent Platform's known
  bug); `failed`, `cancelled`, `incomplete` and `budget_exceeded` are failures quoting `errors[]`
  or the step's error. A 400 at create (e.g. content_blocked) quotes the API's message.
- cost: read from the answer's `usage` (tokens) and converted at the rates of
  storyboard/data/prices.json: video output tokens at the video rate, other output and thought
  tokens at the text rate, input tokens at the input rate. `plan` estimates it from the seconds
  asked for (tokens per second by resolution) and labels it an estimate.
- durations: any length the model allows, fractions too (1.1: 3–10 s, 1.2: 3–15 s), sent as "6.5s".
- extension and edit send the source clip inline, so any clip can be the source: another
  shot's (any provider's) or the film-maker's own MP4 asset.
- A create whose answer is lost after the request left (a read timeout, a reset) is not retried:
  the Interactions API takes no idempotency key, so the shot is journaled `uncertain` and waits
  for `--resubmit` (storyboard.providers._base).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from storyboard.errors import ProviderError
from storyboard.job import EXTENSION_SECONDS, Capabilities, Price, RenderContext, RenderJob, RenderResult
from storyboard.providers import ProviderSettings
from storyboard.providers._base import HttpProvider
from storyboard.providers._cloud import CloudCredentials
from storyboard.providers._http import response_json, write_mp4
from storyboard.providers.omni_body import create_body

RESOLUTIONS = frozenset({"360p", "720p", "1080p", "4k"})
OMNI_11 = Capabilities(durations=frozenset(range(3, 11)), resolutions=RESOLUTIONS, max_references=5,
                       extension_resolutions=RESOLUTIONS, audio_control=False, seed=False, negative_prompt=False,
                       long_duration_only=frozenset(), max_extended_seconds=30, longest_for_inputs=False,
                       edit=True, fractional_durations=True, extend_footage=True)
OMNI_12 = replace(OMNI_11, durations=frozenset(range(3, 16)), seed=True, max_references=6)
PREVIEW = replace(OMNI_11, resolutions=frozenset({"720p"}), extension_resolutions=frozenset({"720p"}))

MODELS: dict[str, dict[str, Capabilities]] = {
    "gemini": {"gemini-omni-1.1-flash": OMNI_11, "gemini-omni-1.2-flash": OMNI_12},
    "vertex": {"gemini-omni-1.1-flash-preview": OMNI_11, "gemini-omni-1.2-flash": OMNI_12,
               "gemini-omni-flash-preview": PREVIEW},
}
RUNNING = frozenset({"in_progress", "queued", "requires_action", "requires_continuation", "idle"})


@dataclass(frozen=True, kw_only=True)
class OmniSettings(ProviderSettings):
    """`[providers.omni]`: the common settings plus the platform (and its project on Agent Platform)."""

    platform: Literal["gemini", "vertex"] = "gemini"
    project: str | None = None
    quota_project: str | None = None
    """Agent Platform: the project billed for quota (`x-goog-user-project`); default: the credentials' own."""


def rates() -> dict[str, Any]:
    """The omni rows of storyboard/data/prices.json: USD per million tokens, tokens per second."""
    return json.loads(resources.files("storyboard").joinpath("data/prices.json").read_text())["omni"]


def usage_cost(usage: dict[str, Any]) -> float | None:
    """USD for what the answer's `usage` says was generated, or None when it reports nothing."""
    if not isinstance(usage, dict) or not usage:
        return None
    table = rates()["usd_per_million_tokens"]

    def count(value: Any) -> float:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

    video = sum(count(m.get("tokens")) for m in usage.get("output_tokens_by_modality") or []
                if isinstance(m, dict) and m.get("modality") == "video")
    other = max(0.0, count(usage.get("total_output_tokens")) - video) + count(usage.get("total_thought_tokens"))
    spent = (video * table["video_output"] + other * table["text_output"]
             + count(usage.get("total_input_tokens")) * table["input"])
    return round(spent / 1e6, 4)


def failure(provider: str, interaction: dict[str, Any]) -> str:
    """Why a terminal interaction has no video, in the API's own words where it gave any."""
    words = [str(e.get("message") or e.get("code")) for e in interaction.get("errors") or [] if isinstance(e, dict)]
    for step in interaction.get("steps") or []:
        if isinstance(step, dict) and isinstance(step.get("error"), dict):
            words.append(str(step["error"].get("message") or step["error"].get("code")))
    return "; ".join(dict.fromkeys(w for w in words if w)) or "no reason given"


def video_of(interaction: dict[str, Any]) -> dict[str, Any] | None:
    """The first video block of a `model_output` step (by type, never by index)."""
    steps = interaction.get("steps")
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and step.get("type") == "model_output":
            content = step.get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "video" and (block.get("data") or block.get("uri")):
                    return block
    return None


class OmniProvider(CloudCredentials, HttpProvider):
    """Gemini Omni Flash (text, image, first+last frame, references, extension, edit).

    On Agent Platform its credentials are storyboard.providers._cloud.CloudCredentials (`credentials`
    and `clock` arguments for tests).
    """

    name = "omni"
    default_model = "gemini-omni-1.2-flash"
    official_hosts = ("generativelanguage.googleapis.com", "aiplatform.googleapis.com")
    key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    Settings = OmniSettings
    trusted_suffixes = (".googleapis.com",)
    default_concurrency = 2
    default_rpm = 10
    default_poll_interval = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._spent = threading.local()

    # ---- configuration ----------------------------------------------------------------------

    @property
    def platform(self) -> str:
        return getattr(self.settings, "platform", "gemini")

    @property
    def project(self) -> str:
        """Agent Platform: the table's `project`, GOOGLE_CLOUD_PROJECT, else the one the credentials name."""
        return self.cloud_project()

    @property
    def default_base_url(self) -> str:  # type: ignore[override]
        return ("https://aiplatform.googleapis.com" if self.platform == "vertex"
                else "https://generativelanguage.googleapis.com")

    def interactions_url(self) -> str:
        if self.platform == "vertex":
            return f"{self.base_url}/v1beta1/projects/{self.project}/locations/global/interactions"
        return f"{self.base_url}/v1beta/interactions"

    def capabilities(self, model: str) -> Capabilities:
        """Known models' limits; an unknown name gets 1.1's (the narrower)."""
        return MODELS[self.platform].get(model, OMNI_11)

    # ---- credentials --------------------------------------------------------------------------

    def api_key(self) -> str:
        """The Gemini API key; on Agent Platform, VERTEX_ACCESS_TOKEN else a token from ADC."""
        return self.cloud_token() if self.platform == "vertex" else super().api_key()

    def check_key(self) -> None:
        if self.platform == "vertex":
            self.check_cloud_credentials()
        else:
            super().api_key()

    def secrets(self) -> tuple[str, ...]:
        return super().secrets() + self.cloud_secrets()

    def headers(self) -> dict[str, str]:
        if self.platform == "vertex":
            return self.cloud_headers()
        return {"x-goog-api-key": self.api_key()}

    # ---- money --------------------------------------------------------------------------------

    def price(self, job: RenderJob) -> Price | None:
        """An estimate: tokens per second of the requested output (and of an input clip) at the token rates."""
        table = rates()
        per_second = table["video_tokens_per_second"]
        usd = table["usd_per_million_tokens"]
        out_seconds = EXTENSION_SECONDS if job.extends else job.duration
        tokens_out = per_second.get(job.resolution, per_second["720p"]) * out_seconds
        tokens_in = per_second["720p"] * job.duration if job.edits else 0
        return Price(round((tokens_out * usd["video_output"] + tokens_in * usd["input"]) / 1e6, 4))

    def render(self, job: RenderJob, dest: Path, ctx: RenderContext) -> RenderResult:
        """HttpProvider's render, with the cost the answer's `usage` reports when it reports one."""
        self._spent.cost = None
        result = super().render(job, dest, ctx)
        if self._spent.cost is not None:
            result.cost = Price(self._spent.cost)
        return result

    # ---- the wire -----------------------------------------------------------------------------

    def submit(self, job: RenderJob, ctx: RenderContext) -> str:
        body = create_body(job, ctx, self.name)
        response = self.request("POST", self.interactions_url(), ctx, limited=True, json=body,
                                headers=self.headers())
        answer = response_json(response, self.name)
        ident = answer.get("id")
        if not isinstance(ident, str) or not ident or "/" in ident or "?" in ident:
            raise ProviderError(f"{self.name}: the API accepted the job but returned no usable interaction id",
                                provider=self.name)
        return ident

    def poll(self, operation: str, job: RenderJob, ctx: RenderContext) -> tuple[Any | None, float | None]:
        response = self.request("GET", f"{self.interactions_url()}/{operation}", ctx, headers=self.headers(),
                                max_bytes=self.inline_limit(job))
        interaction = response_json(response, self.name)
        status = interaction.get("status")
        return (None, None) if isinstance(status, str) and status in RUNNING else (interaction, None)

    def outcome(self, finished: dict[str, Any]) -> dict[str, Any]:
        """The video block of a completed interaction; ProviderError for any other ending."""
        status = finished.get("status")
        if status != "completed":
            raise ProviderError(f"{self.name}: the interaction ended '{status}': {failure(self.name, finished)}",
                                provider=self.name)
        video = video_of(finished)
        if video is None:
            raise ProviderError(f"{self.name}: the interaction completed without a video: Google's safety filters "
                                "most likely removed it (blocked outputs are not charged); rephrase the prompt or "
                                "change the inputs", provider=self.name)
        self._spent.cost = usage_cost(finished.get("usage") or {})
        return video

    def fetch(self, output: dict[str, Any], job: RenderJob, dest: Path, ctx: RenderContext) -> dict[str, Any] | None:
        """Write the inline bytes, or download the `uri` (with the key only to Google's hosts)."""
        if data := output.get("data"):
            try:
                raw = base64.b64decode(data, validate=True)
            except (ValueError, TypeError) as exc:
                raise ProviderError(f"{self.name}: the video's inline data is not base64", provider=self.name) from exc
            write_mp4(raw, dest, self.name)
            return None
        self.download(str(output["uri"]), dest, ctx, self.headers(), job)
        return None
