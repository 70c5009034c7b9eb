"""What the fake Google service accepts: Veo 3.1's models, parameters and rules, as its API enforces them.

`validate` checks a predictLongRunning body and raises `Reject` (an API error: HTTP status, google.rpc
status, message) for what Google would refuse.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.fakes._kit import Refusal

GEMINI_MODELS = {"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview", "veo-3.1-lite-generate-preview"}
VERTEX_MODELS = GEMINI_MODELS | {"veo-3.1-generate-001", "veo-3.1-fast-generate-001", "veo-3.1-lite-generate-001"}
GEMINI_PARAMETERS = {"aspectRatio", "resolution", "durationSeconds", "negativePrompt", "personGeneration",
                     "sampleCount", "numberOfVideos", "seed", "enhancePrompt"}
VERTEX_PARAMETERS = GEMINI_PARAMETERS | {"generateAudio", "storageUri", "compressionQuality", "resizeMode", "fps",
                                         "pubsubTopic"}
VERTEX_ENUMS = {"personGeneration": {"allow_adult", "dont_allow", "allow_all"}, "resizeMode": {"pad", "crop"},
                "compressionQuality": {"optimized", "lossless"}}
"""Vertex's enum parameters (compared case-insensitively: the SDK sends PAD, the REST docs pad)."""
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
INSTANCE_FIELDS = {"prompt", "image", "lastFrame", "referenceImages", "video"}
IMAGE_MIMES = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff", "image/webp": b"RIFF"}
RAI_REASON = ("We encountered an issue with the audio for your prompt. You have not been charged for this "
              "request. Support codes: 58061214")
OPERATION_ERROR = {"code": 13, "message": "Video generation failed due to an internal error. Please retry."}
SIZES = {"16:9": (256, 144), "9:16": (144, 256)}


class Reject(Refusal):
    """An API error to answer with: HTTP status, google.rpc status and message."""

    def __init__(self, status: int, code: str, message: str, reason: str | None = None) -> None:
        super().__init__(status, message)
        self.code, self.reason = code, reason


def _number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise Reject(400, "INVALID_ARGUMENT", f"Invalid value for {what}: {value!r}")
    return int(value)


def _image(value: Any, api: str, where: str) -> None:
    if not isinstance(value, dict):
        raise Reject(400, "INVALID_ARGUMENT", f"{where}: expected an Image object")
    if "gcsUri" in value:
        if api == "gemini":
            raise Reject(400, "INVALID_ARGUMENT", f"{where}: gcsUri is not supported by the Gemini API.")
        return
    if "inlineData" in value and api == "gemini":
        mime, data = value["inlineData"].get("mimeType"), value["inlineData"].get("data")
    else:
        mime, data = value.get("mimeType"), value.get("bytesBase64Encoded")
    if mime not in IMAGE_MIMES or not isinstance(data, str):
        raise Reject(400, "INVALID_ARGUMENT", f"{where}: needs image bytes and a mimeType of "
                     f"{', '.join(sorted(IMAGE_MIMES))} (got {mime!r})")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise Reject(400, "INVALID_ARGUMENT", f"{where}: the image data is not valid base64") from None
    if not raw.startswith(IMAGE_MIMES[mime]):
        raise Reject(400, "INVALID_ARGUMENT", f"{where}: the bytes are not {mime}")


def validate(api: str, model: str, body: Any, allow_last_frame_alone: bool = False) -> tuple[dict, dict]:
    """Check a predictLongRunning body against Veo 3.1's rules; return (instance, parameters)."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list) or len(body["instances"]) != 1:
        raise Reject(400, "INVALID_ARGUMENT", "Expected exactly one instance in 'instances'.")
    instance, params = body["instances"][0], body.get("parameters") or {}
    for where, given, known in (("instances[0]", instance, INSTANCE_FIELDS),
                                ("parameters", params, GEMINI_PARAMETERS if api == "gemini" else VERTEX_PARAMETERS)):
        for key in given:
            if key not in known:
                raise Reject(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown name \"{key}\" at "
                             f"'{where}': Cannot find field.")
    extension = "video" in instance
    duration = _number(params["durationSeconds"], "durationSeconds") if "durationSeconds" in params else 8
    resolution = params.get("resolution", "720p")
    refs = instance.get("referenceImages") or []
    if duration not in ((7, 8) if extension else (4, 6, 8)):
        raise Reject(400, "INVALID_ARGUMENT", f"durationSeconds must be 4, 6 or 8 (got {duration}).")
    if resolution not in ("720p", "1080p", "4k") or (resolution == "4k" and "lite" in model):
        raise Reject(400, "INVALID_ARGUMENT", f"Unsupported resolution {resolution!r} for {model}.")
    if params.get("aspectRatio", "16:9") not in SIZES:
        raise Reject(400, "INVALID_ARGUMENT", f"Unsupported aspectRatio {params.get('aspectRatio')!r}.")
    for key in ("sampleCount", "numberOfVideos"):
        if key in params and not 1 <= _number(params[key], key) <= 4:
            raise Reject(400, "INVALID_ARGUMENT", f"{key} must be between 1 and 4.")
    if "seed" in params and not 0 <= _number(params["seed"], "seed") <= 4294967295:
        raise Reject(400, "INVALID_ARGUMENT", "seed must be a uint32.")
    if "generateAudio" in params and not isinstance(params["generateAudio"], bool):
        raise Reject(400, "INVALID_ARGUMENT", "generateAudio must be a boolean.")
    for key, allowed in VERTEX_ENUMS.items():
        if key in params and str(params[key]).lower() not in allowed:
            raise Reject(400, "INVALID_ARGUMENT", f"Invalid value {params[key]!r} for {key}: expected one of "
                         f"{', '.join(sorted(allowed))}.")
    if "resizeMode" in params and "image" not in instance:
        raise Reject(400, "INVALID_ARGUMENT", "resizeMode is supported for image-to-video only.")
    if "storageUri" in params and not str(params["storageUri"]).startswith("gs://"):
        raise Reject(400, "INVALID_ARGUMENT", "storageUri must be a Cloud Storage URI (gs://bucket/prefix).")
    prompt = instance.get("prompt")
    if prompt is not None and not isinstance(prompt, str) or len(prompt or "") > 4096:
        raise Reject(400, "INVALID_ARGUMENT", "The prompt must be a string of at most 1024 tokens.")
    if not prompt and not ("image" in instance or extension):
        raise Reject(400, "INVALID_ARGUMENT", "A prompt is required.")
    for key in ("image", "lastFrame"):
        if key in instance:
            _image(instance[key], api, f"instances[0].{key}")
    if refs:
        if not isinstance(refs, list) or len(refs) > 3:
            raise Reject(400, "INVALID_ARGUMENT", "At most 3 reference images are supported.")
        if {"image", "video", "lastFrame"} & instance.keys() or not prompt:
            raise Reject(400, "INVALID_ARGUMENT", "referenceImages need a prompt and cannot be combined with "
                         "image, video or lastFrame.")
        for i, ref in enumerate(refs):
            if not isinstance(ref, dict) or str(ref.get("referenceType", "")).lower() != "asset":
                raise Reject(400, "INVALID_ARGUMENT", f"referenceImages[{i}]: referenceType must be 'asset'.")
            _image(ref.get("image"), api, f"instances[0].referenceImages[{i}].image")
    if "lastFrame" in instance and "image" not in instance and not allow_last_frame_alone:
        raise Reject(400, "INVALID_ARGUMENT", "lastFrame must be used in combination with image.")
    if extension and "image" in instance:
        raise Reject(400, "INVALID_ARGUMENT", "image and video cannot be combined.")
    if (resolution in ("1080p", "4k") or refs or extension) and duration != 8 and not (extension and duration == 7):
        raise Reject(400, "INVALID_ARGUMENT", "1080p, 4k, reference images and extension need durationSeconds 8.")
    if extension and resolution != "720p":
        raise Reject(400, "INVALID_ARGUMENT", "Video extension supports 720p only.")
    return instance, {**params, "durationSeconds": duration}
