"""Bounded transfers: every answer read under a size cap and a minimum pace, no key sent off its origin.

A provider's answer is untrusted too. Without bounds, a server (or whoever a storyboard points
at) can make a build read a 400 MB "JSON" body into memory, nest it until the parser blows the
stack, announce 2 GB and trickle a byte every two seconds, or redirect a submit (key and body)
to another host. So here:

    API answers   read while streaming, at most `max_json` bytes (16 MiB; more when the answer
                  may carry the clip itself, base64-encoded), parsed only then, nesting <= 100
    downloads     at most 50 Mbit/s x the clip's seconds + 16 MiB (STORYBOARD_MAX_VIDEO_BYTES)
    both          after `grace` seconds the average must stay above `min_rate` (64 KiB/s), so a
                  transfer ends within grace + size / min_rate + one read timeout
    redirects     API calls follow only redirects to their own origin (scheme, host, port); any
                  other is refused, so no header (x-goog-api-key, X-API-Key, Authorization…) and
                  no body ever reaches a host the API names. Downloads have their own rule
                  (storyboard.providers._http.download: credentials only to trusted hosts).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from storyboard.errors import ProviderError, StoryboardError

if TYPE_CHECKING:
    import httpx  # imported where a request is made: a plan never needs it

MiB = 1024 * 1024
MAX_DEPTH = 100
"""Deeper JSON is refused: no API answer nests this far, and Python's own tools recurse on it."""
_BODY_KEYS = ("json", "content", "data", "files")
_ENV = {"max_json": "STORYBOARD_MAX_JSON_BYTES", "max_video": "STORYBOARD_MAX_VIDEO_BYTES",
        "min_rate": "STORYBOARD_MIN_BYTES_PER_SECOND", "grace": "STORYBOARD_SLOW_GRACE_SECONDS"}


@dataclass(frozen=True)
class Limits:
    """How much an answer may weigh and how slowly it may arrive (see the module docstring)."""

    max_json: int = 16 * MiB
    video_bitrate: float = 50e6 / 8
    """Bytes per second of clip a download may hold: 50 Mbit/s, above any Veo output."""
    video_slack: int = 16 * MiB
    max_video: int | None = None
    """A fixed cap for downloads instead of the one computed from the clip's length."""
    min_rate: float = 64 * 1024
    grace: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        """The defaults, with any STORYBOARD_MAX_JSON_BYTES, _MAX_VIDEO_BYTES, _MIN_BYTES_PER_SECOND,
        _SLOW_GRACE_SECONDS the user set."""
        given: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in _ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if value < 0:
                raise StoryboardError(f"{var}={raw!r} is not a number of {'seconds' if name == 'grace' else 'bytes'}")
            given[name] = int(value) if "int" in str(types[name]) else value
        return cls(**given)

    def video_bytes(self, seconds: float) -> int:
        """The most a download of a `seconds`-long clip may weigh."""
        return self.max_video if self.max_video is not None else int(self.video_bitrate * seconds) + self.video_slack

    def inline_video_json(self, seconds: float) -> int:
        """The most a JSON answer that may carry the clip itself (base64) may weigh."""
        return max(self.max_json, self.video_bytes(seconds) * 4 // 3 + MiB)


def where(request: httpx.Request | None) -> str:
    """`METHOD /path` of a request, for messages (never the query, which may hold a key)."""
    return f"{request.method} {request.url.path}" if request is not None else "request"


def _size(n: float) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n:.0f} bytes"


class Pace:
    """Fails a transfer whose average rate, once `grace` seconds have passed, is below `min_rate`."""

    def __init__(self, limits: Limits, provider: str, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits, self.provider, self.what, self.clock = limits, provider, what, clock
        self.start = clock()

    def check(self, received: int) -> None:
        elapsed = self.clock() - self.start
        if elapsed <= self.limits.grace or received >= self.limits.min_rate * elapsed:
            return
        raise ProviderError(f"{self.provider}: {self.what} is too slow: {_size(received)} in {elapsed:.0f} s, below "
                            f"the {_size(self.limits.min_rate)}/s storyboard waits for; stopped (a slow link? set "
                            f"{_ENV['min_rate']} lower)", provider=self.provider)


def capped_chunks(response: httpx.Response, limit: int, limits: Limits, provider: str, what: str,
                  variable: str) -> Iterator[bytes]:
    """The (decoded) body of a streamed `response`, refused past `limit` bytes or below the pace.

    `variable` names the environment variable that raises the limit, for the message.
    """
    length = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"

    def too_big(size: str) -> ProviderError:
        return ProviderError(f"{provider}: {what} is {size}, more than the {_size(limit)} storyboard accepts "
                             f"(set {variable} to allow more)", provider=provider)

    if length.isdigit() and not encoded and int(length) > limit:
        raise too_big(f"announced as {_size(int(length))}")
    pace = Pace(limits, provider, what)
    received = 0
    for chunk in response.iter_bytes():
        received += len(chunk)
        if received > limit:
            raise too_big("larger")
        pace.check(received)
        yield chunk


def send(client: httpx.Client, method: str, url: str | httpx.URL, *, provider: str, limit: int | None = None,
         limits: Limits = Limits(), max_redirects: int = 5, **kwargs: Any) -> httpx.Response:
    """One API call, its answer read whole within `limit` bytes (default `limits.max_json`).

    Redirects to the same origin are followed (303, and 301/302 after a POST, become a GET
    without the body); a redirect to another origin is a ProviderError.
    """
    import httpx

    limit = limits.max_json if limit is None else limit
    request = client.build_request(method, url, **kwargs)
    for _ in range(max_redirects + 1):
        response = client.send(request, stream=True, follow_redirects=False)
        try:
            if response.is_redirect and "Location" in response.headers:
                request = _redirected(client, request, response, provider, kwargs)
                continue
            what = f"the answer to {where(request)}"
            content = b"".join(capped_chunks(response, limit, limits, provider, what, _ENV["max_json"]))
        finally:
            response.close()
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=content, request=request,
                              extensions={k: v for k, v in response.extensions.items()
                                          if k in ("http_version", "reason_phrase")})
    raise ProviderError(f"{provider}: more than {max_redirects} redirects from {where(request)}", provider=provider)


def _redirected(client: httpx.Client, request: httpx.Request, response: httpx.Response, provider: str,
                kwargs: dict[str, Any]) -> httpx.Request:
    target = request.url.join(response.headers["Location"])
    if (target.scheme, target.host, target.port) != (request.url.scheme, request.url.host, request.url.port):
        raise ProviderError(f"{provider}: {where(request)} was redirected (HTTP {response.status_code}) to another "
                            f"host, {target.scheme}://{target.netloc.decode()}; storyboard does not follow API calls "
                            f"off {request.url.host}, so neither the key nor the request went there",
                            provider=provider, status=response.status_code)
    method = request.method
    keep = ("headers", "timeout", "extensions", *_BODY_KEYS)
    if response.status_code == 303 and method != "HEAD" or response.status_code in (301, 302) and method == "POST":
        method, keep = "GET", ("headers", "timeout", "extensions")
    return client.build_request(method, target, **{k: v for k, v in kwargs.items() if k in keep})


def decode_json(content: bytes | str) -> Any:
    """Parse JSON; ValueError when it is not JSON or nests deeper than MAX_DEPTH (no RecursionError)."""
    try:
        value = json.loads(content)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)
    return value


def json_or_none(response: httpx.Response) -> Any:
    """The JSON body of a read response, or None (not JSON, or nested too deep to read safely)."""
    try:
        return decode_json(response.content)
    except ValueError:
        return None
