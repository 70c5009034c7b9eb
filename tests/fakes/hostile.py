"""Hostile servers on loopback: a scriptable HTTP server and a forwarding proxy, both recording.

    with Loopback(answer) as api:          # answer(handler, seen) writes the response
        api.url, api.seen                  # http://127.0.0.1:PORT, every request received

    with Proxy({"films.example": fake.url}, rewrite={fake.url: "http://films.example"}) as proxy:
        proxy.seen                         # (host, method, path, headers) of every proxied request

The proxy stands in for "somewhere on the internet": a build pointed at a made-up host reaches
it through HTTP_PROXY, so the test sees exactly what would have left the machine, and nothing does.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from storyboard.providers._hosts import is_loopback


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    host: str = ""


Answer = Callable[[BaseHTTPRequestHandler, Seen], None]


def reply_json(handler: BaseHTTPRequestHandler, body: Any, status: int = 200,
               headers: dict[str, str] | None = None) -> None:
    """Answer with `body` as JSON (a str or bytes is sent as it is)."""
    data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def redirect(handler: BaseHTTPRequestHandler, location: str, status: int = 307) -> None:
    handler.send_response(status)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.seen: list[Any] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Any:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Recording(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _seen(self) -> Seen:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)


class Loopback(_Server):
    """A server whose every answer is `answer(handler, seen)`; `seen` lists the requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

        class Handler(_Recording):
            def _any(self) -> None:
                seen = self._seen()
                owner.seen.append(seen)
                try:
                    owner.answer(self, seen)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: that is the point
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _any

        owner = self
        super().__init__(Handler)


class Proxy(_Server):
    """An HTTP proxy that forwards `routes` hosts (and loopback) upstream and records everything.

    `rewrite` replaces text in the answers' bodies: the upstream's URL by the host it plays.
    """

    def __init__(self, routes: dict[str, str], rewrite: dict[str, str] | None = None) -> None:
        self.routes = routes
        self.rewrite = rewrite or {}

        class Handler(_Recording):
            def _any(self) -> None:
                seen = self._seen()
                parts = urlsplit(self.path)
                seen.host = parts.hostname or ""
                owner.seen.append(seen)
                upstream = owner.routes.get(seen.host) or (f"http://{parts.netloc}" if is_loopback(seen.host) else None)
                if upstream is None:
                    reply_json(self, {"error": "the proxy reaches nothing outside the machine"}, 502)
                    return
                target = urlsplit(upstream)
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                headers = {k: v for k, v in seen.headers.items() if k not in ("host", "proxy-connection", "connection")}
                connection.request(seen.method, path, body=seen.body or None, headers=headers)
                response = connection.getresponse()
                data = response.read()
                for old, new in owner.rewrite.items():  # the upstream's own URLs, as the remote host would give them
                    data = data.replace(old.encode(), new.encode())
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = _any

        owner = self
        super().__init__(Handler)
