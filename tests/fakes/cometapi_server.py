"""A fake CometAPI `/v1/videos` service on loopback (multipart jobs, Veo aliases), with faults.

    with FakeCometApi(pending_polls=2) as fake:     # or the `cometapi_fake` pytest fixture
        fake.fail("poll", 503); fake.video_url = False   # completed tasks name no URL: use /content
        fake.bodies("submit")   # [{"fields": {...}, "files": [{"name", "filename", "content_type", "sha256"}]}]

    python -m tests.fakes.cometapi_server --port 8767

    POST /v1/videos                multipart/form-data: prompt, model, size, input_reference × 0–2
    GET  /v1/videos/{id}           queued → in_progress → completed (video_url unless video_url=False) | failed
    GET  /v1/videos/{id}/content   the video, with the key
    GET  /files/{id}.mp4           the video_url (no key)

The key is accepted as `Bearer <key>` (API reference) or bare (one blog example). Any field
but the four documented ones is a 400, so a client cannot send controls the aliases ignore.
Every video is 8 s (the aliases take no duration). The machinery is tests.fakes.uniall_server's.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from tests.fakes._kit import Reply, Request, serve
from tests.fakes.google_server import SIZES
from tests.fakes.uniall_server import FAIL_MESSAGE, IMAGE_MAGIC, ApiError, Route, TaskFake

FIELDS = {"prompt", "model", "size", "input_reference"}
ORIENTATIONS = {"16x9": SIZES["16:9"], "9x16": SIZES["9:16"]}
SECONDS = 8


def backend_model(alias: str) -> str:
    """The resolved backend id the API reports, e.g. veo3.1-4k -> veo_3_1-4K."""
    return alias.replace("veo3.1", "veo_3_1").replace("-4k", "-4K")


def parse_multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    """{"fields": {name: text}, "files": [{name, filename, content_type, sha256, size}], "data": [bytes]}."""
    if not content_type.startswith("multipart/form-data"):
        return {"error": f"expected multipart/form-data, got {content_type or 'no Content-Type'}"}
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields: dict[str, str] = {}
    files: list[dict[str, Any]] = []
    data: list[bytes] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is None:
            fields[str(name)] = payload.decode()
        else:
            files.append({"name": name, "filename": part.get_filename(), "content_type": part.get_content_type(),
                          "sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)})
            data.append(payload)
    return {"fields": fields, "files": files, "data": data}


class FakeCometApi(TaskFake):
    """The fake CometAPI service. Knobs: pending_polls, video_url (name a URL on completion)."""

    label = "cometapi"
    knobs = ("pending_polls", "video_url")

    def __init__(self, *, api_key: str = "fake-cometapi-key", video_url: bool = True, **kwargs: Any) -> None:
        self.video_url = video_url
        super().__init__(api_key=api_key, **kwargs)

    def routes(self) -> list[Route]:
        return [("POST", re.compile(r"^/v1/videos$"), "submit", self._submit),
                ("GET", re.compile(r"^/v1/videos/([^/]+)$"), "poll", self._poll),
                ("GET", re.compile(r"^/v1/videos/([^/]+)/content$"), "content", self._content)]

    def parse(self, req: Request) -> Any:
        if req.endpoint == "submit" and req.raw:
            return parse_multipart(req.raw, req.headers.get("Content-Type", ""))
        return super().parse(req)

    def authorized(self, header: str | None) -> bool:
        return header in (f"Bearer {self.api_key}", self.api_key)

    def _submit(self, request: Request, match: re.Match[str]) -> Reply:
        body = request.body
        if body is None or "error" in body:
            raise ApiError(400, (body or {}).get("error", "expected multipart/form-data"))
        fields, files = body["fields"], body["files"]
        unknown = sorted((set(fields) | {f["name"] for f in files}) - FIELDS)
        if unknown:
            raise ApiError(400, f"unknown parameter(s): {', '.join(unknown)}")
        if any(f["name"] != "input_reference" for f in files) or "input_reference" in fields:
            raise ApiError(400, "input_reference must be a file")
        prompt = fields.get("prompt", "")
        if not prompt:
            raise ApiError(400, "prompt is required")
        model = fields.get("model", "veo3-fast")
        if not model.startswith("veo"):
            raise ApiError(400, f"model {model!r} not found", "model_not_found")
        size = fields.get("size", "16x9")
        if size not in ORIENTATIONS:
            raise ApiError(400, f"size must be 16x9 or 9x16 (got {size!r})")
        if len(files) > 2:
            raise ApiError(400, "input_reference takes at most 2 images (first and last frame)")
        for i, data in enumerate(body["data"]):
            if not data.startswith(IMAGE_MAGIC):
                raise ApiError(400, f"input_reference[{i}] is not an image")
        task = self._create(model, prompt, SECONDS, ORIENTATIONS[size], orientation=size)
        return Reply(200, {"id": task.id, "object": "video", "model": backend_model(model), "status": "queued",
                           "progress": 0, "seconds": "", "size": size, "created_at": task.created})

    def _poll(self, request: Request, match: re.Match[str]) -> Reply:
        task = self._advance(match.group(1))
        status = self.status(task)
        payload: dict[str, Any] = {"id": task.id, "task_id": task.id, "object": "video",
                                   "model": backend_model(task.model), "size": task.extra.get("orientation", "16x9"),
                                   "status": status, "progress": self.progress(task), "created_at": task.created}
        if status == "failed":
            payload["error"] = {"message": FAIL_MESSAGE, "code": "generation_failed"}
        if status == "completed":
            payload["seconds"] = str(SECONDS)
            if self.video_url:
                payload["video_url"] = self.file_url(task)
        return Reply(200, payload)

    def _content(self, request: Request, match: re.Match[str]) -> Reply:
        with self._lock:
            task = self._state.tasks.get(match.group(1))
            entry = self._state.files.get(task.file_id) if task and task.file_id else None
        if entry is None:
            raise ApiError(404, f"video {match.group(1)} not found or not completed", "not_found")
        return Reply(file=entry[0])


try:
    import pytest
except ImportError:  # the standalone server does not need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def cometapi_server() -> Any:
        """One fake CometAPI service for the whole session."""
        with FakeCometApi() as fake:
            yield fake

    @pytest.fixture
    def cometapi_fake(cometapi_server: FakeCometApi) -> FakeCometApi:
        """The session's fake, with counts, faults and knobs reset for this test."""
        cometapi_server.reset()
        return cometapi_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pending-polls", type=int, default=2)
    parser.add_argument("--api-key", default="fake-cometapi-key")
    args = parser.parse_args(argv)
    serve(FakeCometApi(api_key=args.api_key, host=args.host, port=args.port, pending_polls=args.pending_polls))


if __name__ == "__main__":
    main()
