"""A fake Azerion video API on loopback: one synchronous POST answers with the video, with faults.

    with FakeAzerion(delay=0) as fake:              # or the `azerion_fake` pytest fixture
        fake.url; fake.fail("generate", 503); fake.delay = 0.5
        fake.count("generate"), fake.submissions["a prompt"], fake.bodies("generate")

    python -m tests.fakes.azerion_server --port 8765  # prints its URL; GET /_fake/stats, POST /_fake/config

    POST /v1/videos/generation   Authorization: Bearer   -> {"videos": [{"base64_encoded"} | {"url"}]}
    GET  /files/{id}.mp4          (the `url` answers; public)

Endpoints for knobs and counts: generate, download. Errors use Azerion's envelope
{"error": {"message", "type", "code", "param", "status_code"}}. The body is checked against the
documented keys (an unknown key is a 400 here, stricter than the docs promise) and Veo's rules;
media objects need exactly one of `url` and `base_64_encoded`. `delay` holds every answer that
many seconds (a slow generation). Prompt markers: [blocked] answers 400 with code
`content_policy_violation` (the docs do not say how a block looks), [empty] answers 200 with
no videos. `video` must be a clip this fake generated; the answer is 7 s longer.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes._kit import Reply, Request, serve
from tests.fakes.apiframe_server import SIZES, GatewayFake, Reject, clip
from tests.fakes.google_server import clip as google_clip

KEYS = {"model", "prompt", "n", "image", "last_frame", "reference_images", "video", "generate_audio", "duration",
        "resolution", "aspect_ratio", "seed", "negative_prompt", "person_generation", "resize_mode",
        "compression_quality", "output_format"}
IMAGE_MIMES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG"}
TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
         422: "invalid_request_error", 429: "rate_limit_error", 500: "api_error", 503: "api_error"}
BLOCKED = "The request was rejected because it may violate our content policy."


class FakeAzerion(GatewayFake):
    """The fake Azerion service. Knobs may be changed from any thread while it serves."""

    knobs = ("delay",)

    def __init__(self, *, api_key: str = "az-fake", delay: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.api_key = api_key
        self.delay = delay
        super().__init__(host=host, port=port)

    def clear(self) -> None:
        self.files: dict[str, Path] = {}
        self.clips: dict[str, tuple[int, tuple[int, int]]] = {}
        """sha256 of every clip handed out -> (seconds, size), to recognise an extension's source."""

    def error_body(self, exc: Any) -> Any:
        return {"error": {"message": exc.message, "type": exc.extra.get("type", TYPES.get(exc.status, "api_error")),
                          "code": exc.extra.get("code"), "param": exc.extra.get("param"),
                          "status_code": exc.status}}

    def resolve(self, request: Request) -> tuple[str, Callable[[Request], Reply]] | None:
        if request.method == "POST" and request.path == "/v1/videos/generation":
            return "generate", self._generate
        if request.method == "GET" and request.path.startswith("/files/") and request.path.endswith(".mp4"):
            return "download", lambda req: self._download(req.path[len("/files/"):-len(".mp4")])
        return None

    def _generate(self, request: Request) -> Reply:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise Reject(401, "Invalid API key provided.", code="invalid_api_key")
        body = request.json
        seconds, size = self._validate(body)
        if self.delay:
            time.sleep(self.delay)
        prompt = body.get("prompt", "")
        if "[blocked]" in prompt:
            raise Reject(400, BLOCKED, code="content_policy_violation", param="prompt")
        with self._lock:
            self.submissions[prompt] += 1
        if "[empty]" in prompt:
            return Reply(200, {"videos": []})
        path = clip(seconds, size)
        self._remember(path, seconds, size)
        videos = []
        for sample in range(body.get("n", 1)):
            if sample:  # `n` videos differ from one another, as Veo's samples do
                path = google_clip(seconds, size, sample)
                self._remember(path, seconds, size)
            if body.get("output_format", "base64") == "url":
                file_id = uuid.uuid4().hex
                with self._lock:
                    self.files[file_id] = path
                videos.append({"url": f"{self.url}/files/{file_id}.mp4"})
            else:
                videos.append({"base64_encoded": base64.b64encode(path.read_bytes()).decode()})
        return Reply(200, {"videos": videos})

    def _remember(self, path: Path, seconds: int, size: tuple[int, int]) -> None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with self._lock:
            self.clips[digest] = (seconds, size)

    def _validate(self, body: Any) -> tuple[int, tuple[int, int]]:
        def bad(param: str, message: str) -> Reject:
            return Reject(400, message, code="invalid_parameter", param=param)

        if not isinstance(body, dict):
            raise Reject(400, "The body must be a JSON object.", code="invalid_json")
        for key in body:
            if key not in KEYS:
                raise bad(key, f"Unrecognized request argument supplied: {key}")
        if body.get("model") != "google-veo-3-1":
            raise Reject(404, f"The model '{body.get('model')}' does not exist.", code="model_not_found", param="model")
        prompt = body.get("prompt")
        if prompt is not None and (not isinstance(prompt, str) or len(prompt) > 4000):
            raise bad("prompt", "prompt must be a string of at most 4000 characters.")
        extension = "video" in body
        if not prompt and not ("image" in body or extension):
            raise bad("prompt", "prompt is required for text-to-video.")
        allowed = {"n": range(1, 5), "duration": (4, 6, 8), "resolution": ("720p", "1080p"),
                   "aspect_ratio": ("16:9", "9:16"), "output_format": ("base64", "url"),
                   "person_generation": ("allow_adult", "allow_all", "dont_allow"), "generate_audio": (True, False)}
        for key, values in allowed.items():
            if key in body and (body[key] not in values or isinstance(body[key], bool) != (key == "generate_audio")):
                raise bad(key, f"Invalid value for {key}: {body[key]!r}.")
        seed = body.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 4294967295:
            raise bad("seed", "seed must be an integer between 0 and 4294967295.")
        for key in ("image", "last_frame"):
            if key in body:
                self._media(body[key], key, IMAGE_MIMES)
        refs = body.get("reference_images") or []
        if refs:
            if not isinstance(refs, list) or len(refs) > 3:
                raise bad("reference_images", "At most 3 reference images are supported.")
            if {"image", "last_frame", "video"} & body.keys() or not prompt:
                raise bad("reference_images", "reference_images need a prompt and cannot be combined with image, "
                          "last_frame or video.")
            for i, ref in enumerate(refs):
                if not isinstance(ref, dict) or set(ref) - {"image", "reference_type"} or \
                        ref.get("reference_type") != "subject":
                    raise bad(f"reference_images[{i}]", "reference_type must be 'subject' (style is not supported "
                              "on Veo 3.1).")
                self._media(ref.get("image"), f"reference_images[{i}].image", IMAGE_MIMES)
        if "last_frame" in body and "image" not in body:
            raise bad("last_frame", "last_frame must be used together with image.")
        if extension:
            if "image" in body:
                raise bad("video", "image and video cannot be combined.")
            data = self._media(body["video"], "video", {"video/mp4": b""})
            source = self.clips.get(hashlib.sha256(data).hexdigest()) if data is not None else None
            if source is None:
                raise bad("video", "The input video must be a video previously generated by Veo.")
            return source[0] + 7, source[1]
        return int(body.get("duration", 8)), SIZES[(body.get("resolution", "720p"), body.get("aspect_ratio", "16:9"))]

    def _media(self, value: Any, where: str, mimes: dict[str, bytes]) -> bytes | None:
        """Check a media object; return its decoded bytes (None for a URL)."""
        if not isinstance(value, dict) or set(value) - {"mime_type", "url", "base_64_encoded"}:
            raise Reject(400, f"{where}: expected {{mime_type, url | base_64_encoded}}.", param=where)
        if value.get("mime_type") not in mimes:
            raise Reject(400, f"{where}: mime_type must be one of {', '.join(mimes)}.", param=where)
        if ("url" in value) == ("base_64_encoded" in value):
            raise Reject(400, f"{where}: provide exactly one of url or base_64_encoded.", param=where)
        if "url" in value:
            return None
        try:
            data = base64.b64decode(value["base_64_encoded"], validate=True)
        except (ValueError, TypeError):
            raise Reject(400, f"{where}: base_64_encoded is not valid base64.", param=where) from None
        if not data.startswith(mimes[value["mime_type"]]):
            raise Reject(400, f"{where}: the data is not {value['mime_type']}.", param=where)
        return data

    def _download(self, file_id: str) -> Reply:
        with self._lock:
            path = self.files.get(file_id)
        if path is None:
            raise Reject(404, "File not found or expired.")
        return Reply(200, file=path)


try:
    import pytest
except ImportError:  # the standalone server does not need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def azerion_server() -> Any:
        """One fake Azerion service for the whole session."""
        with FakeAzerion() as fake:
            yield fake

    @pytest.fixture
    def azerion_fake(azerion_server: FakeAzerion) -> FakeAzerion:
        """The session's fake, with counts, faults and knobs reset for this test."""
        azerion_server.reset()
        return azerion_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--api-key", default="az-fake")
    args = parser.parse_args(argv)
    serve(FakeAzerion(api_key=args.api_key, delay=args.delay, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
