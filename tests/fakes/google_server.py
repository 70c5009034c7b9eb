"""A fake Google Veo 3.1 service on loopback: the Gemini API, Vertex AI and GCS downloads, with faults.

    with FakeGoogle(pending_polls=2) as fake:       # or the `google_fake` pytest fixture
        fake.url                                    # http://127.0.0.1:PORT, for every protocol
        fake.fail("submit", 429, times=2, retry_after="1")
        fake.count("submit"), fake.submissions["a prompt"], fake.bodies("submit")

    python -m tests.fakes.google_server --port 8765  # prints its URL; GET /_fake/stats for counts

Gemini:  POST /v1beta/models/{m}:predictLongRunning   GET /v1beta/models/{m}/operations/{id}
         GET /v1beta/files/{id}:download?alt=media  (302 to /media/{id} unless redirect=False)
Vertex:  POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:predictLongRunning
         POST …/models/{m}:fetchPredictOperation     GET /storage/v1/b/{bucket}/o/{object}?alt=media
OAuth:   POST /token  (a service account's JWT grant: give the ADC file "token_uri": fake.url + "/token")
         issues fake-sa-token-N, valid `token_lifetime` seconds; Vertex accepts `token` and every issued one.

The server, records, faults, hold() and /_fake routes are tests.fakes._kit's; what Veo 3.1 accepts is
tests.fakes.google_rules, which URL reaches what is tests.fakes.google_routes. Endpoints for
knobs and counts: submit, poll, download (files and GCS), media (the redirect target), token.
Every request is counted, faulted ones too; `submissions` counts accepted jobs per prompt;
`request_headers(endpoint)` tells what headers each request carried. Outcomes come from
`outcome` or from prompt markers: [rai] (reasons under generateVideoResponse), [rai-top] (directly
under response), [error] (operation error).
Videos are real MP4s (testsrc2 + a sine tone, 256x144 at 24 fps) of the requested length; an
extension returns its source's length + 7 s.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes._kit import GOOGLE_STATUS, LoopbackFake, Refusal, Reply, Request, serve
from tests.fakes.google_routes import resolve
from tests.fakes.google_rules import (  # noqa: F401  (the names tests and other fakes import from here)
    GEMINI_MODELS,
    IMAGE_MIMES,
    JWT_GRANT,
    OPERATION_ERROR,
    RAI_REASON,
    SIZES,
    VERTEX_MODELS,
    Reject,
    validate,
)

_CLIP_LOCK = threading.Lock()


def clip(seconds: int, size: tuple[int, int], variant: int = 0) -> Path:
    """A real MP4 of `seconds` at `size`, made once with ffmpeg and cached in the temp folder.

    `variant` > 0 turns the hue (one sample of several differs from the others in its pixels)."""
    import imageio_ffmpeg

    folder = Path(tempfile.gettempdir()) / "storyboard-fake-google"
    path = folder / f"clip-{seconds}s-{size[0]}x{size[1]}{f'-v{variant}' if variant else ''}.mp4"
    with _CLIP_LOCK:
        if path.is_file():
            return path
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{uuid.uuid4().hex}.mp4"
        w, h = size
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
                        "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=24:duration={seconds}"
                        + (f",hue=h={variant * 90}:s={1 + variant}" if variant else ""),
                        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-frames:v",
                        str(seconds * 24), "-c:a", "aac", "-b:a", "64k", "-shortest", "-movflags", "+faststart",
                        str(tmp)], check=True, capture_output=True)
        tmp.replace(path)
        return path


@dataclass
class Operation:
    api: str
    name: str
    model: str
    prompt: str
    seconds: int
    size: tuple[int, int]
    outcome: str
    polls_left: int
    storage_uri: str | None = None
    result: dict[str, Any] | None = None
    samples: int = 1
    """Vertex `sampleCount`: this many distinct videos in the answer."""


@dataclass
class _State:
    operations: dict[str, Operation] = field(default_factory=dict)
    files: dict[str, tuple[Path, int, tuple[int, int]]] = field(default_factory=dict)
    objects: dict[tuple[str, str], str] = field(default_factory=dict)
    issued_tokens: list[str] = field(default_factory=list)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)


class FakeGoogle(LoopbackFake):
    """The fake service. Knobs may be changed from any thread while it serves."""

    knobs = ("pending_polls", "redirect", "outcome", "allow_last_frame_alone", "token_lifetime")
    actions = ("finish_pending", "forget_operations")
    truncated = ("download", "media")

    def __init__(self, *, api_key: str = "fake-gemini-key", token: str = "fake-vertex-token",
                 project: str = "fake-project", pending_polls: int = 2, redirect: bool = True,
                 outcome: str = "ok", host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_key, self.token, self.project = api_key, token, project
        self.pending_polls, self.redirect, self.outcome = pending_polls, redirect, outcome
        self.allow_last_frame_alone = False
        self.token_lifetime = 3600
        super().__init__(host=host, port=port)
        self._lock = self.lock

    def clear(self) -> None:
        self._state = _State()

    def refusal(self, status: int, message: str) -> Reject:
        return Reject(status, GOOGLE_STATUS.get(status, "UNKNOWN"), message)

    def error_reply(self, exc: Refusal) -> Reply:
        error: dict[str, Any] = {"code": exc.status, "message": exc.message,
                                 "status": getattr(exc, "code", GOOGLE_STATUS.get(exc.status, "UNKNOWN"))}
        if getattr(exc, "reason", None):
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": exc.reason,
                                 "domain": "googleapis.com"}]
        return Reply(exc.status, {"error": error}, content_type="application/json; charset=UTF-8")

    def resolve(self, req: Request) -> tuple[str, Callable[[Request], Reply]] | None:
        return resolve(self, req)

    def parse(self, req: Request) -> Any:
        """JSON, or the form of an OAuth token request."""
        if "x-www-form-urlencoded" in (req.headers.get("Content-Type") or ""):
            return dict(parse_qsl(req.raw.decode("utf-8", "replace")))
        return req.json

    # ---- knobs --------------------------------------------------------------------------------

    def finish_pending(self) -> None:
        """Let every running operation finish at its next poll (pending_polls affects new ones only)."""
        with self._lock:
            for op in self._state.operations.values():
                op.polls_left = 0

    def forget_operations(self) -> None:
        """Drop every operation, as if they had expired: polls answer 404."""
        with self._lock:
            self._state.operations.clear()

    def hold(self, endpoint: str = "submit") -> None:
        super().hold(endpoint)

    def in_flight(self, endpoint: str = "submit") -> int:
        return super().in_flight(endpoint)

    # ---- what happened ------------------------------------------------------------------------

    def request_headers(self, endpoint: str) -> list[dict[str, str]]:
        """The headers of each request to `endpoint` (names in lower case), oldest first."""
        return self.headers(endpoint)

    @property
    def issued_tokens(self) -> list[str]:
        """The access tokens /token has issued, oldest first."""
        with self._lock:
            return list(self._state.issued_tokens)

    @property
    def assertions(self) -> list[dict[str, Any]]:
        """The claims of each JWT a service account sent to /token."""
        with self._lock:
            return list(self._state.assertions)

    def accepts(self, token: str) -> bool:
        """Whether Vertex takes `token`: the configured one, or one /token issued and not expired."""
        with self._lock:
            return token not in self._state.expired and (token == self.token or token in self._state.issued_tokens)

    def expire(self, *tokens: str) -> None:
        """Refuse `tokens` from now on (401), as Google does once a token's hour is up."""
        with self._lock:
            self._state.expired.update(tokens)

    def _grant(self, form: Any) -> dict[str, Any]:
        """A service account's JWT-bearer grant -> a fresh access token (claims checked, not the signature)."""
        if not isinstance(form, dict) or form.get("grant_type") != JWT_GRANT or not form.get("assertion"):
            raise Reject(400, "invalid_grant", "Expected a JWT-bearer grant with an assertion.")
        parts = str(form["assertion"]).split(".")
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (IndexError, ValueError):
            raise Reject(400, "invalid_grant", "Invalid JWT Signature.") from None
        if len(parts) != 3 or not claims.get("iss") or not str(claims.get("aud", "")).endswith("/token"):
            raise Reject(400, "invalid_grant", "Invalid JWT: iss and aud are required.")
        with self._lock:
            self._state.assertions.append(claims)
        return {"access_token": self.issue(), "expires_in": self.token_lifetime, "token_type": "Bearer"}

    def issue(self) -> str:
        """A new access token Vertex will accept (what /token hands out; tests' fake credentials too)."""
        with self._lock:
            token = f"fake-sa-token-{len(self._state.issued_tokens) + 1}"
            self._state.issued_tokens.append(token)
            return token

    def operation_names(self) -> set[str]:
        """The name of every operation the service has created (and not forgotten)."""
        with self._lock:
            return set(self._state.operations)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**super().stats(), "operations": len(self._state.operations)}

    def start_operation(self, prompt: str, *, api: str = "gemini", model: str = "veo-3.1-generate-preview",
                        seconds: int = 8) -> str:
        """Create an operation without a request (as if an earlier, killed build had submitted it)."""
        return self._create(api, model, prompt, seconds, SIZES["16:9"], None)

    # ---- the service --------------------------------------------------------------------------

    def _create(self, api: str, model: str, prompt: str, seconds: int, size: tuple[int, int],
                storage_uri: str | None, samples: int = 1) -> str:
        op_id = uuid.uuid4().hex[:16]
        name = (f"models/{model}/operations/{op_id}" if api == "gemini" else
                f"projects/{self.project}/locations/us-central1/publishers/google/models/{model}/operations/{op_id}")
        marker = next((m for m in ("rai-top", "rai", "error") if f"[{m}]" in prompt), self.outcome)
        with self._lock:
            self._state.operations[name] = Operation(api, name, model, prompt, seconds, size, marker,
                                                     self.pending_polls, storage_uri, samples=samples)
        return name

    def _poll(self, name: str) -> dict[str, Any]:
        with self._lock:
            op = self._state.operations.get(name)
            if op is None:
                raise Reject(404, "NOT_FOUND", f"Operation {name} not found.")
            if op.polls_left > 0:
                op.polls_left -= 1
                return {"name": name, "done": False}
            if op.result is None:
                op.result = self._finish(op)
            return op.result

    def _finish(self, op: Operation) -> dict[str, Any]:
        if op.outcome == "error":
            return {"name": op.name, "done": True, "error": OPERATION_ERROR}
        if op.outcome in ("rai", "rai-top"):
            rai = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [RAI_REASON]}
            if op.api == "vertex" or op.outcome == "rai-top":
                return {"name": op.name, "done": True, "response": rai}
            return {"name": op.name, "done": True, "response": {"generateVideoResponse": rai}}
        path = clip(op.seconds, op.size)
        file_id = uuid.uuid4().hex[:12]
        self._state.files[file_id] = (path, op.seconds, op.size)
        if op.api == "gemini":
            uri = f"{self.url}/v1beta/files/{file_id}:download?alt=media"
            samples = [{"video": {"uri": uri}}]
            return {"name": op.name, "done": True, "response": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                "generateVideoResponse": {"generatedSamples": samples}}}
        videos = []
        for sample in range(op.samples):  # sampleCount: distinct videos, sample 0 the one clip as ever
            if sample:
                path = clip(op.seconds, op.size, sample)
                file_id = uuid.uuid4().hex[:12]
                self._state.files[file_id] = (path, op.seconds, op.size)
            if op.storage_uri:
                bucket, _, prefix = op.storage_uri.removeprefix("gs://").partition("/")
                obj = f"{prefix.strip('/')}/{op.name.rsplit('/', 1)[-1]}/sample_{sample}.mp4".lstrip("/")
                self._state.objects[(bucket, obj)] = file_id
                videos.append({"gcsUri": f"gs://{bucket}/{obj}", "mimeType": "video/mp4"})
            else:
                videos.append({"bytesBase64Encoded": base64.b64encode(path.read_bytes()).decode(),
                               "mimeType": "video/mp4"})
        return {"name": op.name, "done": True, "response": {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
            "raiMediaFilteredCount": 0, "videos": videos}}

    def _source_seconds(self, video: dict[str, Any], api: str) -> tuple[int, tuple[int, int]]:
        """Length and size of the clip an extension names, by file id, gs:// object or bytes."""
        with self._lock:
            if "uri" in video:
                match = re.search(r"files/([a-z0-9]+)", str(video["uri"]))
                if match and match.group(1) in self._state.files:
                    _, seconds, size = self._state.files[match.group(1)]
                    return seconds, size
                raise Reject(400, "INVALID_ARGUMENT", "The input video must be a video generated by Veo "
                             "that has not expired.")
            if "gcsUri" in video and api == "vertex":
                bucket, _, obj = str(video["gcsUri"]).removeprefix("gs://").partition("/")
                if (bucket, obj) in self._state.objects:
                    _, seconds, size = self._state.files[self._state.objects[(bucket, obj)]]
                    return seconds, size
                raise Reject(404, "NOT_FOUND", f"No such object: {bucket}/{obj}")
            data = video.get("bytesBase64Encoded") if api == "vertex" else (video.get("inlineData") or {}).get("data")
            if not data:
                raise Reject(400, "INVALID_ARGUMENT", "video: give a uri, inline data or bytes")
            digest = hashlib.sha256(base64.b64decode(data)).hexdigest()
            for path, seconds, size in self._state.files.values():
                if hashlib.sha256(path.read_bytes()).hexdigest() == digest:
                    return seconds, size
        raise Reject(400, "INVALID_ARGUMENT", "The input video must be a video generated by Veo.")

    def _submit(self, api: str, model: str, body: Any) -> dict[str, Any]:
        models = GEMINI_MODELS if api == "gemini" else VERTEX_MODELS
        if model not in models:
            raise Reject(404, "NOT_FOUND", f"models/{model} is not found for API version "
                         f"{'v1beta' if api == 'gemini' else 'v1'}, or is not supported for predictLongRunning.")
        instance, params = validate(api, model, body, self.allow_last_frame_alone)
        seconds = int(params.get("durationSeconds", 8))
        size = SIZES[params.get("aspectRatio", "16:9")]
        if "video" in instance:
            source, size = self._source_seconds(instance["video"], api)
            seconds = source + 7
            limit = 148 if api == "gemini" else 37
            if seconds > limit:
                raise Reject(400, "INVALID_ARGUMENT", f"The extended video would be {seconds} s; the limit is "
                             f"{limit} s.")
        prompt = instance.get("prompt", "")
        name = self._create(api, model, prompt, seconds, size, params.get("storageUri"),
                            int(params.get("sampleCount", 1)) if api == "vertex" else 1)
        with self._lock:
            self.submissions[prompt] += 1
        return {"name": name}


try:
    import pytest
except ImportError:  # the standalone server does not need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def google_server() -> Any:
        """One fake Google service for the whole session."""
        with FakeGoogle() as fake:
            yield fake

    @pytest.fixture
    def google_fake(google_server: FakeGoogle) -> FakeGoogle:
        """The session's fake, with counts, faults and knobs reset for this test."""
        google_server.reset()
        return google_server


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; print the URL first (for subprocess tests)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pending-polls", type=int, default=2)
    parser.add_argument("--api-key", default="fake-gemini-key")
    parser.add_argument("--token", default="fake-vertex-token")
    parser.add_argument("--project", default="fake-project")
    parser.add_argument("--no-redirect", action="store_true")
    args = parser.parse_args(argv)
    serve(FakeGoogle(api_key=args.api_key, token=args.token, project=args.project, host=args.host,
                     port=args.port, pending_polls=args.pending_polls, redirect=not args.no_redirect))


if __name__ == "__main__":
    main()
