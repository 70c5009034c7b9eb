"""A fake UniAll gateway on loopback (JSON video tasks, media as URLs it fetches), with faults.

    with FakeUniAll(pending_polls=2) as fake:       # or the `uniall_fake` pytest fixture
        fake.url                                    # http://127.0.0.1:PORT
        fake.fail("submit", 429, times=2, retry_after="1")
        fake.count("submit"), fake.submissions["a prompt"], fake.bodies("submit"), fake.fetched

    python -m tests.fakes.uniall_server --port 8766  # prints its URL; GET /_fake/stats for counts

    POST /v1/video/generations    Bearer key; JSON body checked against the docs and Veo's rules
    GET  /v1/videos/{task_id}     queued → in_progress (progress n%) → completed | failed
    GET  /files/{id}.mp4          the video (no key: it stands for a CDN)

Every URL in `image`, `last_image`, `images` and `video` is fetched while the create request
waits, like the real service does: an unreachable URL or bytes that are not an image (a video
for `video`) are a 400. `fetched` maps each URL to the sha256 of what it served, so tests can
compare it with the input they published. A `video` must be a clip this fake served (Veo
extends only its own videos); the result is that clip plus 7 s.

`TaskFake` is the part the CometAPI fake (tests.fakes.cometapi_server) shares: tasks that
finish after `pending_polls` polls, `/files/`, the key check; the server, records, faults and
/_fake routes are tests.fakes._kit's.
Endpoints for knobs and counts: submit, poll, download (and `content` on CometAPI). Prompt
marker `[fail]` makes a task fail with FAIL_MESSAGE. Videos are real MP4s (testsrc2 and a
tone, 256x144 at 24 fps) from tests.fakes.google_server.clip.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fakes._kit import LoopbackFake, Refusal, Reply, Request, serve
from tests.fakes.google_server import SIZES, clip

FAIL_MESSAGE = "The generated video was blocked by the upstream safety filter. You were not charged."
MODELS = {f"veo3.1{speed}-video-{res}": res for speed in ("", "-fast") for res in ("720p", "1080p", "4k")}
FIELDS = {"model", "prompt", "image", "images", "last_image", "video", "size", "aspect_ratio", "duration",
          "extra_body"}
EXTRA_FIELDS = {"generate_audio", "negative_prompt", "seed"}
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"RIFF")
CREATE_SHAPES = ("id", "task_id", "data.id", "data.task_id", "data", "empty")
RESULT_SHAPES = ("full", "video_url", "result.video_url", "result.outputs")


class ApiError(Refusal):
    """An error to answer with, in the OpenAI-style envelope the gateways use."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(status, message)
        self.code = code


@dataclass
class Task:
    id: str
    model: str
    prompt: str
    seconds: int
    size: tuple[int, int]
    outcome: str
    polls_left: int
    polls: int = 0
    finished: bool = False
    file_id: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    tasks: dict[str, Task] = field(default_factory=dict)
    files: dict[str, tuple[Path, int, tuple[int, int]]] = field(default_factory=dict)
    fetched: dict[str, str] = field(default_factory=dict)


Route = tuple[str, "re.Pattern[str]", str, Callable[[Request, "re.Match[str]"], Reply]]
FILES = re.compile(r"^/files/([a-z0-9]+)\.mp4$")


class TaskFake(LoopbackFake):
    """A task-style video gateway: subclasses add their routes, request checks and task JSON."""

    label = "task"
    knobs = ("pending_polls",)
    actions = ("finish_pending", "forget_tasks")
    truncated = ("download", "content")
    messages = {401: "Invalid token (request id: fake)", 429: "Too many requests, please retry later",
                500: "Internal server error", 503: "No available channel for this model, retry later"}

    def __init__(self, *, api_key: str = "fake-key", pending_polls: int = 2, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.api_key = api_key
        self.pending_polls = pending_polls
        super().__init__(host=host, port=port)
        self._lock = self.lock

    def clear(self) -> None:
        self._state = _State()

    def refusal(self, status: int, message: str) -> ApiError:
        return ApiError(status, message, f"fake_{status}" if status != 404 else "not_found")

    def error_reply(self, exc: Refusal) -> Reply:
        return Reply(exc.status, {"error": {"message": exc.message, "type": "invalid_request_error"
                                            if exc.status < 500 else "server_error", "param": "",
                                            "code": getattr(exc, "code", f"fake_{exc.status}")}})

    def resolve(self, req: Request) -> tuple[str, Callable[[Request], Reply]] | None:
        for verb, pattern, endpoint, handle in self.routes():
            if verb == req.method and (match := pattern.match(req.path)):
                return endpoint, lambda req, handle=handle, match=match: self._keyed(req, handle, match)
        if req.method == "GET" and (match := FILES.match(req.path)):
            return "download", lambda req: self._file(match)
        return None

    def _keyed(self, req: Request, handle: Callable[[Request, re.Match[str]], Reply], match: re.Match[str]) -> Reply:
        if not self.authorized(req.headers.get("Authorization")):
            raise ApiError(401, "Invalid token (request id: fake)", "invalid_api_key")
        return handle(req, match)

    def _file(self, match: re.Match[str]) -> Reply:
        with self._lock:
            entry = self._state.files.get(match.group(1))
        if entry is None:
            raise ApiError(404, f"file {match.group(1)} not found or expired", "not_found")
        return Reply(file=entry[0])

    # ---- knobs --------------------------------------------------------------------------------

    def finish_pending(self) -> None:
        """Let every running task finish at its next poll."""
        with self._lock:
            for task in self._state.tasks.values():
                task.polls_left = 0

    def forget_tasks(self) -> None:
        """Drop every task, as if it had expired: polls answer 404."""
        with self._lock:
            self._state.tasks.clear()

    # ---- what happened ------------------------------------------------------------------------

    @property
    def fetched(self) -> dict[str, str]:
        """URL -> sha256 of the bytes it served, for every media URL the fake fetched."""
        with self._lock:
            return dict(self._state.fetched)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**super().stats(), "tasks": len(self._state.tasks)}

    def start_task(self, prompt: str, *, model: str = "veo3.1-video-720p", seconds: int = 8) -> str:
        """Create a task without a request (as if an earlier, killed build had submitted it)."""
        return self._create(model, prompt, seconds, SIZES["16:9"]).id

    # ---- tasks ----------------------------------------------------------------------------------

    def _create(self, model: str, prompt: str, seconds: int, size: tuple[int, int], **extra: Any) -> Task:
        task = Task(f"task_{uuid.uuid4().hex[:20]}", model, prompt, seconds, size,
                    "fail" if "[fail]" in prompt else "ok", self.pending_polls, extra=extra)
        with self._lock:
            self._state.tasks[task.id] = task
            self.submissions[prompt] += 1
        return task

    def _advance(self, task_id: str) -> Task:
        """One poll of a task: it runs `pending_polls` polls, then finishes (making its video)."""
        with self._lock:
            task = self._state.tasks.get(task_id)
            if task is None:
                raise ApiError(404, f"task {task_id} not found", "task_not_exist")
            task.polls += 1
            if task.polls_left > 0:
                task.polls_left -= 1
                return task
            task.finished = True
            if task.outcome == "ok" and task.file_id is None:
                task.file_id = uuid.uuid4().hex[:12]
                self._state.files[task.file_id] = (clip(task.seconds, task.size), task.seconds, task.size)
            return task

    @staticmethod
    def status(task: Task) -> str:
        if not task.finished:
            return "queued" if task.polls <= 1 else "in_progress"
        return "failed" if task.outcome == "fail" else "completed"

    @staticmethod
    def progress(task: Task) -> int:
        if task.finished:
            return 100
        return 100 * task.polls // (task.polls + task.polls_left + 1)

    def file_url(self, task: Task) -> str:
        return f"{self.url}/files/{task.file_id}.mp4"

    def source_of(self, digest: str) -> tuple[int, tuple[int, int]] | None:
        """(seconds, size) of the clip this fake served with these bytes, or None."""
        with self._lock:
            files = list(self._state.files.values())
        for path, seconds, size in files:
            if hashlib.sha256(path.read_bytes()).hexdigest() == digest:
                return seconds, size
        return None

    def fetch(self, url: Any, where: str, kind: str) -> bytes:
        """GET a media URL the client sent, like the real service; ApiError if it does not serve `kind`."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ApiError(400, f"{where}: expected an http(s) URL, got {url!r}")
        try:
            response = httpx.get(url, timeout=10)
        except httpx.HTTPError as exc:
            raise ApiError(400, f"{where}: failed to download {url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise ApiError(400, f"{where}: failed to download {url}: HTTP {response.status_code}")
        data = response.content
        ok = data.startswith(IMAGE_MAGIC) if kind == "image" else data[4:8] == b"ftyp"
        if not ok:
            raise ApiError(400, f"{where}: {url} is not {'an image' if kind == 'image' else 'an MP4 video'}")
        with self._lock:
            self._state.fetched[url] = hashlib.sha256(data).hexdigest()
        return data

    # ---- what subclasses fill in --------------------------------------------------------------

    def routes(self) -> list[Route]:
        """(method, path pattern, endpoint name, handler(request, match)) of the API."""
        raise NotImplementedError

    def authorized(self, header: str | None) -> bool:
        return header == f"Bearer {self.api_key}"


class FakeUniAll(TaskFake):
    """The fake UniAll service. Knobs: pending_polls, create_shape (CREATE_SHAPES), result_shape
    (RESULT_SHAPES), cdn_host (serve video URLs under another host name, e.g. "localhost")."""

    label = "uniall"
    knobs = ("pending_polls", "create_shape", "result_shape", "cdn_host")

    def __init__(self, *, api_key: str = "fake-uniall-key", create_shape: str = "id", result_shape: str = "full",
                 cdn_host: str | None = None, **kwargs: Any) -> None:
        self.create_shape, self.result_shape, self.cdn_host = create_shape, result_shape, cdn_host
        super().__init__(api_key=api_key, **kwargs)

    def routes(self) -> list[Route]:
        return [("POST", re.compile(r"^/v1/video/generations$"), "submit", self._submit),
                ("GET", re.compile(r"^/v1/videos/([^/]+)$"), "poll", self._poll)]

    def file_url(self, task: Task) -> str:
        url = super().file_url(task)
        return url.replace("127.0.0.1", self.cdn_host) if self.cdn_host else url

    def _submit(self, request: Request, match: re.Match[str]) -> Reply:
        model, prompt, seconds, size = self.validate(request.body)
        task = self._create(model, prompt, seconds, size)
        shape = {"id": {"id": task.id, "object": "video.generation.job", "model": model, "status": "queued",
                        "progress": 0, "created_at": task.created},
                 "task_id": {"task_id": task.id, "status": "queued"},
                 "data.id": {"code": "success", "message": "", "data": {"id": task.id, "status": "queued"}},
                 "data.task_id": {"code": "success", "data": {"task_id": task.id}},
                 "data": {"code": "success", "message": "", "data": task.id},
                 "empty": {}}[self.create_shape]
        return Reply(200, shape)

    def _poll(self, request: Request, match: re.Match[str]) -> Reply:
        task = self._advance(match.group(1))
        status = self.status(task)
        payload: dict[str, Any] = {"id": task.id, "task_id": task.id, "object": "video.generation.job",
                                   "model": task.model, "status": status, "progress": self.progress(task),
                                   "video_url": None, "result": None, "error": None, "created_at": task.created,
                                   "thumbnail_url": None}
        if status == "failed":
            payload["error"] = {"message": FAIL_MESSAGE, "type": "upstream_error", "param": "",
                                "code": "content_policy_violation"}
        if status == "completed":
            url = self.file_url(task)
            payload.update({"full": {"video_url": url, "result": {"outputs": [url], "video_url": url}},
                            "video_url": {"video_url": url},
                            "result.video_url": {"result": {"video_url": url}},
                            "result.outputs": {"result": {"outputs": [url]}}}[self.result_shape])
        return Reply(200, payload)

    def validate(self, body: Any) -> tuple[str, str, int, tuple[int, int]]:
        """Check a create body as documented (lenient where the docs are); fetch its media URLs."""
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise ApiError(400, f"unknown field(s): {', '.join(unknown)}")
        model = body.get("model")
        if model not in MODELS:
            raise ApiError(400, f"model {model!r} is not available; use one of {', '.join(sorted(MODELS))}",
                           "model_not_found")
        if "size" in body and body["size"] != MODELS[model]:
            raise ApiError(400, f"size {body['size']!r} does not match model {model} ({MODELS[model]})")
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string")
        ratio = body.get("aspect_ratio", "16:9")
        if ratio not in SIZES:
            raise ApiError(400, f"aspect_ratio must be 16:9 or 9:16 (got {ratio!r})")
        duration = body.get("duration", 8)
        if isinstance(duration, bool) or str(duration) not in ("4", "6", "8"):
            raise ApiError(400, f"duration must be 4, 6 or 8 (got {duration!r})")
        extra = body.get("extra_body", {})
        if not isinstance(extra, dict) or set(extra) - EXTRA_FIELDS:
            raise ApiError(400, f"extra_body takes only {', '.join(sorted(EXTRA_FIELDS))}")
        if "generate_audio" in extra and not isinstance(extra["generate_audio"], bool):
            raise ApiError(400, "extra_body.generate_audio must be a boolean")
        seed = extra.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1):
            raise ApiError(400, "extra_body.seed must be a uint32")
        images = body.get("images")
        if images is not None:
            if "-fast-" in model:
                raise ApiError(400, f"{model} does not support multi-image reference generation")
            if not isinstance(images, list) or not 2 <= len(images) <= 3:
                raise ApiError(400, "images takes 2 to 3 reference image URLs")
            if {"image", "last_image", "video"} & body.keys():
                raise ApiError(400, "images cannot be combined with image, last_image or video")
        if "last_image" in body and "image" not in body:
            raise ApiError(400, "last_image must be used together with image")
        if "video" in body and {"image", "images"} & body.keys():
            raise ApiError(400, "video cannot be combined with image or images")
        if not prompt and not ({"image", "video"} & body.keys()):
            raise ApiError(400, "prompt is required")
        for key in ("image", "last_image"):
            if key in body:
                self.fetch(body[key], key, "image")
        for i, url in enumerate(images or []):
            self.fetch(url, f"images[{i}]", "image")
        if "video" in body:
            if MODELS[model] != "720p":
                raise ApiError(400, "video extension supports 720p only")
            source = self.source_of(hashlib.sha256(self.fetch(body["video"], "video", "video")).hexdigest())
            if source is None:
                raise ApiError(400, "video: only videos generated by Veo can be extended")
            seconds, size = source[0] + 7, source[1]
            if seconds > 148:
                raise ApiError(400, f"the extended video would be {seconds} s; the limit is 148 s")
            return model, prompt, seconds, size
        return model, prompt, int(duration), SIZES[ratio]


try:
    import pytest
except ImportError:  # the standalone server does not need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def uniall_server() -> Any:
        """One fake UniAll service for the whole session."""
        with FakeUniAll() as fake:
            yield fake

    @pytest.fixture
    def uniall_fake(uniall_server: FakeUniAll) -> FakeUniAll:
        """The session's fake, with counts, faults and knobs reset for this test."""
        uniall_server.reset()
        return uniall_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pending-polls", type=int, default=2)
    parser.add_argument("--api-key", default="fake-uniall-key")
    args = parser.parse_args(argv)
    serve(FakeUniAll(api_key=args.api_key, host=args.host, port=args.port, pending_polls=args.pending_polls))


if __name__ == "__main__":
    main()
