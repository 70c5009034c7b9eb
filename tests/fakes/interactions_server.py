"""A loopback fake of the Interactions API serving Gemini Omni Flash (google-2026.md §4).

Both surfaces, both API versions:

    POST /{v1beta|v1}/interactions                 x-goog-api-key (or ?key=, never both)
    GET  /{ver}/interactions/{id}   POST .../{id}/cancel   DELETE .../{id}
    POST /v1beta1/projects/{p}/locations/global/interactions      Authorization: Bearer
    GET  /v1beta1/projects/{p}/locations/global/interactions/{id}

Create bodies are validated as §4 says (400 with the documented messages). A background
interaction answers `in_progress` for `polls` GETs, then `completed` with a real MP4 inline: as
long as asked (an edit: as long as its source; an extension: source + the asked seconds) at the
size of the resolution. Scripted outcomes by a token in the prompt:

    [blocked]   400 content_blocked at create      [filtered]  completed without a video
    [failed]    failed with errors[] and step error [userinput] completed with only user_input steps

Agent Platform takes `token` and every token `issue()` minted (until `expire()`d). Transport faults
come from tests.fakes._kit (endpoints "create", "poll", "cancel", "delete").
"""

from __future__ import annotations

import base64
import re
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes._kit import LoopbackFake, Refusal, Reply, Request, json_reply

GEMINI_MODELS = {"gemini-omni-1.1-flash": 10, "gemini-omni-1.2-flash": 15}
VERTEX_MODELS = {"gemini-omni-1.1-flash-preview": 10, "gemini-omni-1.2-flash": 15, "gemini-omni-flash-preview": 10}
RETIRED = {"gemini-omni-flash-preview"}
TASKS = {"text_to_video", "image_to_video", "reference_to_video", "edit", "extend", "upscale"}
SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
TOKENS = {"360p": 1931, "720p": 5792, "1080p": 8688, "4k": 11584}
FORBIDDEN = ("system_instruction", "safety_settings", "temperature", "top_p", "stop_sequences")
DURATION = re.compile(r"^\d+(\.\d+)?s$")
KNOWN_FIELDS = {"model", "input", "response_format", "generation_config", "background", "store", "stream",
                "previous_interaction_id", "labels", "webhook_config", "response_modalities", *FORBIDDEN}
_CLIP_LOCK = threading.Lock()


class Reject(Refusal):
    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(status, message)
        self.reason = reason


def clip(frames: int, size: tuple[int, int]) -> bytes:
    """A real MP4 of `frames` at 24 fps and `size`, made once with ffmpeg and cached."""
    import imageio_ffmpeg

    folder = Path(tempfile.gettempdir()) / "storyboard-fake-omni"
    path = folder / f"clip-{frames}f-{size[0]}x{size[1]}.mp4"
    with _CLIP_LOCK:
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{uuid.uuid4().hex}.mp4"
            seconds = frames / 24
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
                            "-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate=24:duration={seconds}",
                            "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={seconds}",
                            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-frames:v",
                            str(frames), "-c:a", "aac", "-b:a", "48k", "-shortest", "-movflags", "+faststart",
                            str(tmp)], check=True, capture_output=True)
            tmp.replace(path)
        return path.read_bytes()


def probe_frames(data: bytes) -> tuple[int, tuple[int, int]]:
    """Frames and size of an MP4 sent inline."""
    from storyboard.media import probe

    with tempfile.NamedTemporaryFile(suffix=".mp4") as fh:
        fh.write(data)
        fh.flush()
        info = probe(fh.name)
    return info.frames, (info.width, info.height)


@dataclass
class Interaction:
    id: str
    api: str
    model: str
    prompt: str
    frames: int
    size: tuple[int, int]
    seconds: float
    resolution: str
    polls_left: int
    status: str = "in_progress"
    steps_in: list[Any] | None = None


class FakeInteractions(LoopbackFake):
    """The Interactions API on loopback; `polls` GETs answer in_progress before an interaction completes."""

    knobs = ("polls",)
    actions = ("finish_all",)

    def __init__(self, *, api_key: str = "fake-omni-key", token: str = "fake-vertex-token", polls: int = 1) -> None:
        self.api_key, self.token, self.polls = api_key, token, polls
        super().__init__()

    def clear(self) -> None:
        self.interactions: dict[str, Interaction] = {}
        self.issued: list[str] = []
        self.expired: set[str] = set()

    def issue(self) -> str:
        """A new Agent Platform access token the fake accepts (what fake ADC credentials mint)."""
        with self.lock:
            self.issued.append(f"fake-adc-token-{len(self.issued) + 1}")
            return self.issued[-1]

    def expire(self, *tokens: str) -> None:
        """Refuse `tokens` from now on (401), as Google does once a token's hour is up."""
        with self.lock:
            self.expired.update(tokens)

    # ---- routing ------------------------------------------------------------------------------

    _GEMINI = re.compile(r"^/(v1beta|v1)/interactions(?:/([^/]+?))?(/cancel)?$")
    _VERTEX = re.compile(r"^/v1beta1/projects/([^/]+)/locations/([^/]+)/interactions(?:/([^/]+?))?(/cancel)?$")

    def _parse(self, req: Request) -> tuple[str, str, str | None, str] | None:
        """(api, verb, interaction id, location) of a request, or None."""
        if m := self._GEMINI.match(req.path):
            api, ident, cancel, location = "gemini", m.group(2), m.group(3), "global"
        elif m := self._VERTEX.match(req.path):
            api, ident, cancel, location = "vertex", m.group(3), m.group(4), m.group(2)
        else:
            return None
        verb = {("POST", False, False): "create", ("GET", True, False): "poll", ("POST", True, True): "cancel",
                ("DELETE", True, False): "delete"}.get((req.method, ident is not None, cancel is not None))
        return (api, verb, ident, location) if verb else None

    def endpoint(self, req: Request) -> str | None:
        parsed = self._parse(req)
        return parsed[1] if parsed else None

    def route(self, req: Request) -> Reply | None:
        parsed = self._parse(req)
        if parsed is None:
            return None
        api, verb, ident, location = parsed
        self._authorize(api, req)
        if api == "vertex" and location != "global":
            raise Reject(404, f"Omni models are served from locations/global only, not {location}")
        if verb == "create":
            return json_reply(self.create(api, req.json))
        interaction = self._find(api, ident or "")
        if verb == "poll":
            return json_reply(self.poll(interaction))
        if verb == "cancel":
            return json_reply(self.cancel(interaction))
        with self.lock:
            self.interactions.pop(interaction.id, None)
        return json_reply({})

    def _authorize(self, api: str, req: Request) -> None:
        if api == "gemini":
            header, query = req.headers.get("x-goog-api-key"), req.query.get("key", [None])[0]
            if header and query:
                raise Reject(400, "Multiple authentication credentials received. Please pass only one.")
            if (header or query) != self.api_key:
                raise Reject(403 if (header or query) else 401, "API key not valid. Please pass a valid API key.")
        else:
            scheme, _, token = (req.headers.get("authorization") or "").partition(" ")
            with self.lock:
                known = token == self.token or token in self.issued
                accepted = scheme == "Bearer" and known and token not in self.expired
            if not accepted:
                raise Reject(401, "Request had invalid authentication credentials.")

    def _find(self, api: str, ident: str) -> Interaction:
        with self.lock:
            found = self.interactions.get(ident)
        if found is None or found.api != api:
            raise Reject(404, f"Interaction {ident} not found")
        return found

    # ---- create -------------------------------------------------------------------------------

    def create(self, api: str, body: Any) -> dict[str, Any]:
        model, prompt, task, images, videos, fmt = validate(api, body)
        limit = (GEMINI_MODELS if api == "gemini" else VERTEX_MODELS)[model]
        if "[blocked]" in prompt:
            raise Reject(400, "content_blocked: the prompt contains sensitive words")
        resolution = fmt.get("resolution", "720p")
        if task == "edit" or (videos and task != "extend" and not images):
            frames, size = probe_frames(base64.b64decode(videos[0]["data"]))
            seconds = frames / 24
        else:
            ask = float(str(fmt.get("duration", "10s"))[:-1])
            if ask < 3:
                raise Reject(400, f"Requested video duration {ask:g}s 0ns is less than the minimum allowed 3s 0ns")
            if ask > limit:
                raise Reject(400, f"Requested video duration {ask:g}s 0ns exceeds the maximum allowed {limit}s 0ns")
            frames, size, seconds = round(ask * 24), SIZES[resolution], ask
            if fmt.get("aspect_ratio") == "9:16":
                size = (size[1], size[0])
            if task == "extend":
                source, size = probe_frames(base64.b64decode(videos[0]["data"]))
                frames += source
        ident = ("v1_" if api == "gemini" else "") + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        steps_in = body["input"] if isinstance(body["input"], list) else [body["input"]]
        interaction = Interaction(ident, api, model, prompt, frames, size, seconds, resolution, self.polls,
                                  steps_in=steps_in)
        with self.lock:
            self.interactions[ident] = interaction
            self.submissions[prompt] += 1
        if not body.get("background"):
            interaction.polls_left = 0
            return self._answer(interaction, include_input=False)
        return self._head(interaction)

    # ---- answers ------------------------------------------------------------------------------

    def poll(self, interaction: Interaction) -> dict[str, Any]:
        with self.lock:
            if interaction.status == "in_progress":
                if interaction.polls_left > 0:
                    interaction.polls_left -= 1
                    return self._head(interaction)
        return self._answer(interaction, include_input=True)

    def cancel(self, interaction: Interaction) -> dict[str, Any]:
        with self.lock:
            if interaction.status != "in_progress" or interaction.polls_left <= 0:
                raise Reject(400, "Only running background interactions can be cancelled")
            interaction.status = "cancelled"
        return self._head(interaction)

    def finish_all(self) -> None:
        with self.lock:
            for interaction in self.interactions.values():
                interaction.polls_left = 0

    @staticmethod
    def _head(interaction: Interaction) -> dict[str, Any]:
        return {"id": interaction.id, "object": "interaction", "model": interaction.model,
                "status": interaction.status, "created": "2026-11-18T10:00:00Z", "updated": "2026-11-18T10:00:00Z"}

    def _answer(self, interaction: Interaction, include_input: bool) -> dict[str, Any]:
        head = self._head(interaction)
        if interaction.status == "cancelled":
            return head
        user = [{"type": "user_input", "content": interaction.steps_in}] if include_input else []
        prompt = interaction.prompt
        if "[failed]" in prompt:
            return {**head, "status": "failed", "errors": [{"code": "internal", "message": "Video generation failed."}],
                    "steps": [{"type": "model_output", "error": {"code": 13, "message": "Video generation failed."}}]}
        if "[userinput]" in prompt:
            return {**head, "status": "completed", "steps": user or [{"type": "user_input", "content": []}]}
        thought = [{"type": "thought", "signature": "opaque"}]
        if "[filtered]" in prompt:
            return {**head, "status": "completed", "steps": [*user, *thought, {"type": "model_output", "content": []}]}
        video = base64.b64encode(clip(interaction.frames, interaction.size)).decode()
        tokens = round(interaction.frames / 24 * TOKENS[interaction.resolution])
        usage = {"total_input_tokens": 12, "input_tokens_by_modality": [{"modality": "text", "tokens": 12}],
                 "total_output_tokens": tokens, "output_tokens_by_modality": [{"modality": "video", "tokens": tokens}],
                 "total_thought_tokens": 310, "total_tokens": tokens + 322}
        return {**head, "status": "completed", "steps": [
            *user, *thought, {"type": "model_output", "content": [{"type": "video", "mime_type": "video/mp4",
                                                                  "data": video}]}], "usage": usage}


# ---- validation (google-2026.md §4) -----------------------------------------------------------


def _blocks(value: Any) -> list[dict[str, Any]]:
    """The content blocks of `input`: a string, one block, a flat list, or user_input steps."""
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise Reject(400, "Invalid input at 'input'")
    found: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise Reject(400, "Invalid input at 'input'")
        if item.get("type") == "user_input":
            found.extend(_blocks(item.get("content") or []))
        else:
            found.append(item)
    return found


def validate(api: str, body: Any) -> tuple[str, str, str, list[dict], list[dict], dict[str, Any]]:
    """(model, prompt, task, image blocks, video blocks, response_format) of a valid create body."""
    if not isinstance(body, dict):
        raise Reject(400, "Invalid JSON payload received.")
    if unknown := set(body) - KNOWN_FIELDS:
        raise Reject(400, f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\"")
    for name in FORBIDDEN:
        if name in body:
            raise Reject(400, f"{name} is not supported for this model.")
    model = body.get("model")
    models = GEMINI_MODELS if api == "gemini" else VERTEX_MODELS
    if api == "gemini" and model in RETIRED:
        raise Reject(404, f"models/{model} is not found for API version v1beta, or is not supported.")
    if model not in models:
        raise Reject(404, f"Model {model} not found.")
    if body.get("background") and body.get("store") is False:
        raise Reject(400, "store=true is required for background interactions")
    blocks = _blocks(body.get("input"))
    for block in blocks:
        kind = block.get("type")
        if kind not in ("text", "image", "video", "document", "audio"):
            raise Reject(400, f"Invalid content type {kind!r}")
        if kind != "text":
            if ("data" in block) == ("uri" in block):
                raise Reject(400, f"A {kind} block needs exactly one of data or uri")
            if "data" in block and not block.get("mime_type"):
                raise Reject(400, f"A {kind} block with data needs a mime_type")
            if "data" in block:
                try:
                    base64.b64decode(block["data"], validate=True)
                except ValueError:
                    raise Reject(400, f"Invalid base64 in a {kind} block") from None
            if "youtube.com" in str(block.get("uri", "")):
                raise Reject(400, "YouTube URLs are not supported")
    images = [b for b in blocks if b.get("type") == "image"]
    videos = [b for b in blocks if b.get("type") == "video"]
    prompt = " ".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    fmt = body.get("response_format") or {"type": "video"}
    fmt = fmt[0] if isinstance(fmt, list) and fmt else fmt
    if not isinstance(fmt, dict) or fmt.get("type") != "video":
        raise Reject(400, "Invalid input at 'response_format'")
    if fmt.get("aspect_ratio", "16:9") not in ("16:9", "9:16") or fmt.get("resolution", "720p") not in SIZES:
        raise Reject(400, "Invalid input at 'response_format'")
    if fmt.get("delivery", "inline") not in ("inline", "uri"):
        raise Reject(400, "Invalid input at 'response_format'")
    if api == "vertex" and fmt.get("delivery") == "uri" and not str(fmt.get("gcs_uri", "")).startswith("gs://"):
        raise Reject(400, "gcs_uri starting gs:// is required for uri delivery")
    if "duration" in fmt and not (isinstance(fmt["duration"], str) and DURATION.match(fmt["duration"])):
        raise Reject(400, "Invalid input at 'response_format'")
    config = body.get("generation_config") or {}
    task = ((config.get("video_config") or {}).get("task")
            or ("edit" if videos else "reference_to_video" if len(images) > 2 else
                "image_to_video" if images else "text_to_video"))
    if task not in TASKS:
        raise Reject(400, f"Invalid value at 'generation_config.video_config.task' ({task!r})")
    if "seed" in config and "1.2" not in str(model):
        raise Reject(400, "seed is not supported by this model")
    if task == "edit" and "aspect_ratio" in fmt:
        raise Reject(400, "aspect_ratio is not supported for edit tasks")
    if task in ("edit", "extend") and len(videos) != 1 and not body.get("previous_interaction_id"):
        raise Reject(400, f"{task} needs exactly one input video")
    if task == "image_to_video" and len(images) not in (1, 2):
        raise Reject(400, "image_to_video takes one image, or two (first and last frame)")
    if task == "reference_to_video" and not images:
        raise Reject(400, "reference_to_video needs reference images")
    if len(videos) > 3 and task == "reference_to_video":
        raise Reject(400, "At most 3 reference videos are supported")
    if not prompt.strip():
        raise Reject(400, "A text prompt is required")
    return model, prompt, task, images, videos, fmt
