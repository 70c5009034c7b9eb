"""Which URL of the fake Google service reaches what: the Gemini API, Vertex AI, GCS downloads and OAuth.

Each route checks its protocol's credentials (a Gemini API key, a Vertex bearer token) before
handing the request to the FakeGoogle that serves it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tests.fakes._kit import Reply, Request
from tests.fakes.google_rules import Reject

if TYPE_CHECKING:
    from tests.fakes.google_server import FakeGoogle

GEMINI_SUBMIT = re.compile(r"^/v1beta/models/([^/:]+):predictLongRunning$")
GEMINI_POLL = re.compile(r"^/v1beta/(models/[^/]+/operations/[^/]+)$")
GEMINI_FILE = re.compile(r"^/v1beta/files/([a-z0-9]+):download$")
VERTEX_CALL = re.compile(r"^/v1(?:beta1)?/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+)"
                         r":(predictLongRunning|fetchPredictOperation)$")
GCS_OBJECT = re.compile(r"^/storage/v1/b/([^/]+)/o/(.+)$")
MEDIA = re.compile(r"^/media/([a-z0-9]+)$")


def resolve(fake: FakeGoogle, req: Request) -> tuple[str, Callable[[Request], Reply]] | None:
    """(endpoint, handler) of a request to any of the three protocols, or None."""
    method, path = req.method, (req.path if req.path.startswith("/storage/") else unquote(req.path))
    if method == "POST" and (m := GEMINI_SUBMIT.match(path)):
        return "submit", lambda req: _gemini(fake, req, lambda: fake._submit("gemini", m.group(1), req.body))
    if method == "GET" and (m := GEMINI_POLL.match(path)):
        return "poll", lambda req: _gemini(fake, req, lambda: fake._poll(m.group(1)))
    if method == "GET" and (m := GEMINI_FILE.match(path)):
        return "download", lambda req: _gemini(fake, req, lambda: _file(fake, m.group(1), fake.redirect))
    if method == "GET" and (m := MEDIA.match(path)):
        return "media", lambda req: _file(fake, m.group(1), redirect=False)
    if method == "POST" and (m := VERTEX_CALL.match(path)):
        project, _, model, verb = m.groups()
        if verb == "predictLongRunning":
            return "submit", lambda req: _vertex(fake, req, project, lambda: fake._submit("vertex", model, req.body))
        return "poll", lambda req: _vertex(fake, req, project, lambda: fake._poll(
            str((req.body or {}).get("operationName", ""))))
    if method == "POST" and path == "/token":
        return "token", lambda req: Reply(200, fake._grant(req.body))
    if method == "GET" and (m := GCS_OBJECT.match(path)) and req.query.get("alt") == ["media"]:
        bucket, obj = unquote(m.group(1)), unquote(m.group(2))
        return "download", lambda req: _vertex(fake, req, None, lambda: _object(fake, bucket, obj))
    return None


def _gemini(fake: FakeGoogle, req: Request, then: Callable[[], Any]) -> Reply:
    key = req.headers.get("x-goog-api-key") or req.query.get("key", [None])[0]
    if not key:
        raise Reject(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without "
                     "established identity). Please use API Key or other form of API consumer identity "
                     "to call this API.")
    if key != fake.api_key:
        raise Reject(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                     reason="API_KEY_INVALID")
    return _as_reply(then())


def _vertex(fake: FakeGoogle, req: Request, project: str | None, then: Callable[[], Any]) -> Reply:
    scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
    if scheme != "Bearer" or not fake.accepts(token):
        raise Reject(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected "
                     "OAuth 2 access token, login cookie or other valid authentication credential.")
    if project is not None and project != fake.project:
        raise Reject(403, "PERMISSION_DENIED", f"Permission denied on resource project {project}.")
    return _as_reply(then())


def _as_reply(answer: Any) -> Reply:
    return answer if isinstance(answer, Reply) else Reply(200, answer, content_type="application/json; charset=UTF-8")


def _object(fake: FakeGoogle, bucket: str, obj: str) -> Reply:
    with fake._lock:
        file_id = fake._state.objects.get((bucket, obj))
    if file_id is None:
        raise Reject(404, "NOT_FOUND", f"No such object: {bucket}/{obj}")
    return _file(fake, file_id, redirect=False)


def _file(fake: FakeGoogle, file_id: str, redirect: bool) -> Reply:
    with fake._lock:
        entry = fake._state.files.get(file_id)
    if entry is None:
        raise Reject(404, "NOT_FOUND", f"File {file_id} not found or expired.")
    if redirect:
        return Reply(302, b"", {"Location": f"/media/{file_id}"})
    return Reply(file=entry[0])
