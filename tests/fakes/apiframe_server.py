"""A fake Apiframe v2 service on loopback (uploads, Veo jobs, CDN downloads), with faults.

    with FakeApiframe(pending_polls=2) as fake:     # or the `apiframe_fake` pytest fixture
        fake.url                                    # http://127.0.0.1:PORT
        fake.fail("submit", 429, times=2, retry_after="1"); fake.credits = 5
        fake.count("submit"), fake.submissions["a prompt"], fake.bodies("submit"), fake.uploads

    python -m tests.fakes.apiframe_server --port 8765  # prints its URL; GET /_fake/stats, POST /_fake/config

    POST /v2/uploads (multipart `file`)   POST /v2/videos/generate   GET /v2/jobs/{uuid}   GET /cdn/{id}.mp4

Endpoints for knobs and counts: upload, submit, poll, download. Every request is counted,
faulted ones too; `submissions` counts new jobs per prompt (an Idempotency-Key replay returns
the original job and is not a new one). The generate body is checked like the real schema
(`additionalProperties: false`: an unknown key is a 400 with `details`) and against Veo's
rules; image URLs on this server must be live uploads. Jobs go QUEUED -> PROCESSING (progress)
-> COMPLETED, or FAILED / CANCELLED for the prompt markers [failed] / [cancelled] (or the
`outcome` knob). `result_shape` picks how the completed job names its video (RESULT_SHAPES).
`credits` (None: unlimited) makes submits answer 402 once spent.

The server, records, faults and /_fake routes are tests.fakes._kit's.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.fakes._kit import LoopbackFake, Refusal, Reply, Request, serve
from tests.fakes.google_server import IMAGE_MIMES

MODELS = {"veo-3.1", "veo-3.1-fast", "veo-3.1-lite", "veo-2", "veo-3", "veo-3-fast"}
TOP_KEYS = {"model", "prompt", "veoParams", "webhookUrl", "webhookEvents"}
VEO_KEYS = {"duration", "aspect_ratio", "resolution", "generate_audio", "image", "last_frame", "reference_images",
            "negative_prompt", "seed"}
CREDITS = {"veo-3.1": {True: {4: 10, 6: 15, 8: 20}, False: {4: 5, 6: 8, 8: 10}},
           "veo-3.1-fast": {True: {4: 5, 6: 6, 8: 8}, False: {4: 3, 6: 4, 8: 5}}}
RESULT_SHAPES: dict[str, Callable[[str], dict[str, Any]]] = {
    "videos": lambda url: {"videos": [url]},
    "videos-object": lambda url: {"videos": [{"url": url}]},
    "video_url": lambda url: {"video_url": url},
    "url": lambda url: {"url": url},
    "outputs": lambda url: {"outputs": [url]},
}
SIZES = {("720p", "16:9"): (1280, 720), ("720p", "9:16"): (720, 1280), ("1080p", "16:9"): (1920, 1080),
         ("1080p", "9:16"): (1080, 1920)}
FAILURE = "Content blocked by safety filters: the prompt may violate the usage policy."
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


_CLIP_LOCK = threading.Lock()


def clip(seconds: int, size: tuple[int, int]) -> Path:
    """A real MP4 of `seconds` at Veo's own `size` (H.264 without B-frames, 24 fps, AAC), made once.

    Colour bars compress to almost nothing, and clips of the film's size let the stitcher copy
    them instead of encoding, which keeps end-to-end builds fast.
    """
    import imageio_ffmpeg

    folder = Path(tempfile.gettempdir()) / "storyboard-fake-gateways"
    path = folder / f"bars-{seconds}s-{size[0]}x{size[1]}.mp4"
    with _CLIP_LOCK:
        if path.is_file():
            return path
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{uuid.uuid4().hex}.mp4"
        w, h = size
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
                        "-f", "lavfi", "-i", f"smptebars=size={w}x{h}:rate=24:duration={seconds}",
                        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "40", "-pix_fmt", "yuv420p",
                        "-frames:v", str(seconds * 24), "-c:a", "aac", "-b:a", "32k", "-shortest",
                        "-movflags", "+faststart", str(tmp)], check=True, capture_output=True)
        tmp.replace(path)
        return path


class Reject(Refusal):
    """An API error to answer with: HTTP status, message and extra body fields."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(status, message)
        self.extra = extra


class GatewayFake(LoopbackFake):
    """A gateway's fake: errors are `Reject`s in a JSON envelope, `_lock` guards the API's state."""

    messages = {401: "Invalid API key", 429: "Too many requests", 500: "Internal server error",
                503: "Service temporarily unavailable"}

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self._lock = self.lock

    def refusal(self, status: int, message: str) -> Reject:
        return Reject(status, message)

    def error_reply(self, exc: Refusal) -> Reply:
        return Reply(exc.status, self.error_body(exc))

    def error_body(self, exc: Any) -> Any:
        return {"error": exc.message, **getattr(exc, "extra", {})}


@dataclass
class Upload:
    id: str
    url: str
    content_type: str
    data: bytes
    expires: float
    seq: int
    """Its place in `requests`, to tell whether it came before a submit."""


@dataclass
class Job:
    id: str
    model: str
    prompt: str
    seconds: int
    size: tuple[int, int]
    outcome: str
    polls: int
    credit_cost: int | None
    created: str
    polled: int = 0
    file: str | None = None
    expired: bool = False
    body: dict[str, Any] = field(default_factory=dict)


class FakeApiframe(GatewayFake):
    """The fake Apiframe service. Knobs may be changed from any thread while it serves."""

    knobs = ("pending_polls", "outcome", "result_shape", "credits", "upload_lifetime")

    def __init__(self, *, api_key: str = "afk_fake", pending_polls: int = 2, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.api_key = api_key
        self.pending_polls = pending_polls
        self.outcome = "ok"
        self.result_shape = "videos"
        self.credits: int | None = None
        self.upload_lifetime = 3600.0
        super().__init__(host=host, port=port)

    def clear(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.uploads: dict[str, Upload] = {}
        self.idempotency: dict[str, str] = {}
        self.keys_sent: list[str | None] = []
        """The Idempotency-Key of every submit, in order."""
        self.files: dict[str, Path] = {}

    # ---- knobs and helpers for tests ------------------------------------------------------------

    def start_job(self, prompt: str, *, model: str = "veo-3.1", seconds: int = 8) -> str:
        """Create a job without a request (as if an earlier, killed build had submitted it)."""
        return self._create(model, prompt, seconds, SIZES[("720p", "16:9")], None, {})

    def forget_jobs(self) -> None:
        """Drop every job: polls answer 404."""
        with self._lock:
            self.jobs.clear()

    def expire_results(self) -> None:
        """Purge every result, as after 24 h: jobs say `expired`, result URLs answer 404."""
        with self._lock:
            for job in self.jobs.values():
                job.expired = True
            self.files.clear()

    # ---- the service --------------------------------------------------------------------------

    def resolve(self, request: Request) -> tuple[str, Callable[[Request], Reply]] | None:
        path, method = unquote(request.path), request.method
        if method == "POST" and path == "/v2/uploads":
            return "upload", self._upload
        if method == "POST" and path == "/v2/videos/generate":
            return "submit", self._submit
        if method == "GET" and path.startswith("/v2/jobs/"):
            return "poll", lambda req: self._poll(req, path.removeprefix("/v2/jobs/"))
        if method == "GET" and (m := re.match(r"^/cdn/([0-9a-f]+)\.mp4$", path)):
            return "download", lambda req: self._download(m.group(1))
        return None

    def _auth(self, request: Request) -> None:
        if request.headers.get("X-API-Key") != self.api_key:
            raise Reject(401, "Invalid or missing API key")

    def _upload(self, request: Request) -> Reply:
        self._auth(request)
        kind = request.headers.get("Content-Type") or ""
        if not kind.startswith("multipart/form-data"):
            raise Reject(400, "Expected multipart/form-data with a 'file' field")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {kind}\r\n\r\n".encode() + request.raw)
        part = next((p for p in message.iter_parts()
                     if p.get_param("name", header="content-disposition") == "file"), None)
        if part is None:
            raise Reject(400, "Missing 'file' field")
        data = part.get_payload(decode=True) or b""
        mime = next((m for m, magic in IMAGE_MIMES.items() if data.startswith(magic)), None)
        if mime is None or len(data) > 25 * 1024 * 1024:
            raise Reject(400, "Unsupported file: images up to 25 MB (png, jpeg, webp)")
        upload_id = str(uuid.uuid4())
        url = f"{self.url}/uploads/{upload_id}/{part.get_filename() or 'file'}"
        with self._lock:
            seq = len(self.requests) - 1
            self.uploads[url] = Upload(upload_id, url, mime, data, time.time() + self.upload_lifetime, seq)
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.uploads[url].expires))
        return Reply(201, {"id": upload_id, "url": url, "kind": "image", "contentType": mime,
                           "byteSize": len(data), "expiresAt": expires})

    def _submit(self, request: Request) -> Reply:
        self._auth(request)
        key = request.headers.get("Idempotency-Key")
        with self._lock:
            self.keys_sent.append(key)
        if key is not None and not 1 <= len(key) <= 255:
            raise Reject(400, "Idempotency-Key must be 1-255 characters")
        with self._lock:
            if key in self.idempotency and self.idempotency[key] in self.jobs:
                job = self.jobs[self.idempotency[key]]
                return Reply(202, {"jobId": job.id, "status": self._status(job)})
        body, params = self._validate(request.json)
        seconds = params.get("duration", 8)
        audio = params.get("generate_audio", True)
        cost = CREDITS.get(body["model"], {}).get(audio, {}).get(seconds)
        with self._lock:
            if self.credits is not None and cost is not None:
                if cost > self.credits:
                    raise Reject(402, "Insufficient credits", creditsRequired=cost, creditsAvailable=self.credits)
                self.credits -= cost
            size = SIZES.get((params.get("resolution", "720p"), params.get("aspect_ratio", "16:9")),
                             SIZES[("720p", "16:9")])
            job_id = self._create(body["model"], body["prompt"], seconds, size, cost, body)
            if key is not None:
                self.idempotency[key] = job_id
            self.submissions[body["prompt"]] += 1
        return Reply(202, {"jobId": job_id, "status": "QUEUED"})

    def _validate(self, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        def bad(where: str, message: str) -> Reject:
            return Reject(400, "Validation failed", details={where: [message]})

        if not isinstance(body, dict):
            raise Reject(400, "Request body must be a JSON object")
        for key in body:
            if key not in TOP_KEYS:
                raise bad(key, f"Unrecognized key: '{key}'")
        params = body.get("veoParams") or {}
        if not isinstance(params, dict):
            raise bad("veoParams", "Expected object")
        for key in params:
            if key not in VEO_KEYS:
                raise bad(f"veoParams.{key}", f"Unrecognized key: '{key}'")
        if body.get("model") not in MODELS:
            raise bad("model", f"Invalid enum value. Expected one of {sorted(MODELS)}")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= 4000:
            raise bad("prompt", "String must contain between 1 and 4000 characters")
        lite = body["model"] == "veo-3.1-lite"
        checks = {
            "duration": lambda v: v in (4, 6, 8) and not isinstance(v, bool),
            "aspect_ratio": lambda v: isinstance(v, str) and re.fullmatch(r"\d+:\d+", v) is not None,
            "resolution": lambda v: v in ("720p", "1080p"),
            "generate_audio": lambda v: isinstance(v, bool) and not lite,
            "negative_prompt": lambda v: isinstance(v, str) and len(v) <= 2000,
            "seed": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "image": self._live_url,
            "last_frame": self._live_url,
            "reference_images": lambda v: (isinstance(v, list) and len(v) <= 3 and not lite
                                           and all(self._live_url(u) for u in v)),
        }
        for key, ok in checks.items():
            if key in params and not ok(params[key]):
                raise bad(f"veoParams.{key}", f"Invalid value: {json.dumps(params[key])[:80]}")
        if "last_frame" in params and "image" not in params:
            raise bad("veoParams.last_frame", "last_frame must be used together with image")
        if params.get("reference_images") and {"image", "last_frame"} & params.keys():
            raise bad("veoParams.reference_images", "reference_images cannot be combined with image or last_frame")
        if (params.get("resolution") == "1080p" or params.get("reference_images")) and params.get("duration", 8) != 8:
            raise bad("veoParams.duration", "1080p and reference images need duration 8")
        if "webhookUrl" in body and not str(body["webhookUrl"]).startswith(("http://", "https://")):
            raise bad("webhookUrl", "Invalid url")
        return body, params

    def _live_url(self, value: Any) -> bool:
        """A URI; one on this server must be an upload that has not expired."""
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            return False
        if not value.startswith(self.url):
            return True
        upload = self.uploads.get(value)
        return upload is not None and upload.expires > time.time()

    def _create(self, model: str, prompt: str, seconds: int, size: tuple[int, int], cost: int | None,
                body: dict[str, Any]) -> str:
        marker = next((m for m in ("failed", "cancelled") if f"[{m}]" in prompt), self.outcome)
        job = Job(str(uuid.uuid4()), model, prompt, seconds, size, marker, self.pending_polls, cost,
                  time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), body=body)
        with self._lock:
            self.jobs[job.id] = job
        return job.id

    @staticmethod
    def _status(job: Job) -> str:
        if job.polled <= job.polls:
            return "QUEUED" if job.polled <= 1 else "PROCESSING"
        return {"failed": "FAILED", "cancelled": "CANCELLED"}.get(job.outcome, "COMPLETED")

    def _poll(self, request: Request, job_id: str) -> Reply:
        self._auth(request)
        if not UUID.match(job_id):
            raise Reject(400, "Invalid job id: expected a UUID")
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise Reject(404, "Job not found")
            job.polled += 1
            running, status = job.polled <= job.polls, self._status(job)
            result: Any = None
            if status == "COMPLETED" and not job.expired:
                if job.file is None:
                    job.file = uuid.uuid4().hex
                    self.files[job.file] = clip(job.seconds, job.size)
                result = RESULT_SHAPES[self.result_shape](f"{self.url}/cdn/{job.file}.mp4")
            progress = 100 if not running else int(100 * (job.polled - 1) / (job.polls + 1))
            payload = {"id": job.id, "status": status, "model": job.model, "progress": progress,
                       "error": FAILURE if status == "FAILED" else None, "creditCost": job.credit_cost,
                       "webhookStatus": None, "createdAt": job.created,
                       "completedAt": None if running else job.created, "expired": job.expired,
                       "input": {"prompt": job.prompt}, "result": result}
        return Reply(200, payload)

    def _download(self, file_id: str) -> Reply:
        with self._lock:
            path = self.files.get(file_id)
        if path is None:
            raise Reject(404, "Not found")
        return Reply(200, file=path)


try:
    import pytest
except ImportError:  # the standalone server does not need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def apiframe_server() -> Any:
        """One fake Apiframe service for the whole session."""
        with FakeApiframe() as fake:
            yield fake

    @pytest.fixture
    def apiframe_fake(apiframe_server: FakeApiframe) -> FakeApiframe:
        """The session's fake, with counts, faults and knobs reset for this test."""
        apiframe_server.reset()
        return apiframe_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pending-polls", type=int, default=2)
    parser.add_argument("--api-key", default="afk_fake")
    args = parser.parse_args(argv)
    serve(FakeApiframe(api_key=args.api_key, pending_polls=args.pending_polls, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
