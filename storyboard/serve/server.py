"""The review room's HTTP server: the page, its JSON, one POST to pick, and media with Range.

    GET  /                      the page (storyboard/web/index.html)
    GET  /static/NAME           the page's script and style, from the package
    GET  /api/state             the page's data (storyboard.serve.state), with a version number
    GET  /api/version?after=V   the version, once it passes V (a long poll of at most 20 s)
    POST /api/pick              {"shot": ID, "number": N}: the same write_pick as `storyboard pick`
    GET  /media/SHA             a clip or film from the cache, by digest (only those the page shows)
    GET  /files/PATH            a file of the board's folder;  /build/PATH: of the film's folder

Loopback by default. A page elsewhere on the web could still aim a form at 127.0.0.1, so a
request must name this server in `Host` (against DNS rebinding) and a POST must be JSON from
this origin (a cross-site JSON POST needs a CORS preflight this server never grants).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from storyboard.errors import StoryboardError
from storyboard.serve.files import (Unsatisfiable, byte_range, content_type, is_sha, object_under, open_file,
                                    resolve_under)
from storyboard.serve.room import Room

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_BODY = 64 << 10
LONG_POLL = 20.0
STATIC = ("index.html", "review.js", "review.css")
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class RoomServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its room and the host names it answers to."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], room: Room) -> None:
        self.room = room
        super().__init__(address, Handler)
        host, port = self.server_address[:2]
        self.loopback = address[0] in LOOPBACK
        self.hosts = {f"{h}:{port}" for h in (*LOOPBACK, host)}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: RoomServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: Nagle would hold the body ~40-200 ms
    server_version = "storyboard-review"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the terminal shows the room's own lines, not one per request

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # a closed tab or a seeking player drops its request: nothing to answer

    # ---- routing ----------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._route(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head=True)

    def do_POST(self) -> None:  # noqa: N802
        self.close_connection = True  # a refused POST leaves its body unread: never parse it as the next request
        if not self._host_ok():
            return
        if urlsplit(self.path).path != "/api/pick":
            return self._error(HTTPStatus.NOT_FOUND, "no such endpoint")
        origin = self.headers.get("Origin")
        if origin is not None and origin.removeprefix("http://").rstrip("/") != self.headers.get("Host"):
            return self._error(HTTPStatus.FORBIDDEN, "a pick must come from the review room's own page")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON: Content-Type: application/json")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return self._error(HTTPStatus.BAD_REQUEST, "a JSON body of {shot, number} is expected")
        try:
            body = json.loads(self.rfile.read(length))
            shot, number = body["shot"], body["number"]
            if not isinstance(shot, str) or not isinstance(number, int) or isinstance(number, bool):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return self._error(HTTPStatus.BAD_REQUEST, 'the body must be {"shot": "ID", "number": N}')
        try:
            answer = self.server.room.pick(shot, number)
        except StoryboardError as exc:
            return self._json({"error": exc.message}, HTTPStatus.UNPROCESSABLE_ENTITY)
        self._json(answer)

    def _route(self, head: bool) -> None:
        if not self._host_ok():
            return
        url = urlsplit(self.path)
        path = url.path
        room = self.server.room
        if path in ("/", "/index.html"):
            return self._static("index.html", head)
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"), head)
        if path == "/api/state":
            return self._json(room.snapshot(), head=head)
        if path == "/api/version":
            after = _int(parse_qs(url.query).get("after", ["-1"])[0])
            version = room.wait_version(after, LONG_POLL) if after >= 0 and not head else room.version
            return self._json({"version": version}, head=head)
        if path.startswith("/media/"):
            sha = path.removeprefix("/media/")
            if not is_sha(sha) or sha not in room.media:
                return self._error(HTTPStatus.NOT_FOUND, "no such clip on this page")
            from storyboard.sniff import sniff

            real = object_under(room.roots["cache"], sha)
            if real is None:
                return self._error(HTTPStatus.NOT_FOUND, "no such clip in the cache")
            return self._file(real, content_type(real, sniff(real) or ""), head, immutable=True)
        for prefix in ("files", "build"):
            if path.startswith(f"/{prefix}/"):
                found = resolve_under(room.roots[prefix], path.removeprefix(f"/{prefix}/"))
                if found is None:
                    return self._error(HTTPStatus.NOT_FOUND, "not a file this room serves")
                return self._file(found, content_type(found), head)
        self._error(HTTPStatus.NOT_FOUND, "no such page")

    def _host_ok(self) -> bool:
        """Refuse a request whose Host is not this server (a rebinding attack names another)."""
        if not self.server.loopback or self.headers.get("Host") in self.server.hosts:
            return True
        self._error(HTTPStatus.MISDIRECTED_REQUEST, "this review room answers only to its own address")
        return False

    # ---- answers ------------------------------------------------------------------------------

    def _static(self, name: str, head: bool) -> None:
        if name not in STATIC:
            return self._error(HTTPStatus.NOT_FOUND, "no such file")
        data = resources.files("storyboard").joinpath("web", name).read_bytes()
        self._send(HTTPStatus.OK, data, content_type(Path(name)), head, {"Cache-Control": "no-cache"})

    def _json(self, value: Any, status: HTTPStatus = HTTPStatus.OK, head: bool = False) -> None:
        data = json.dumps(value).encode()
        self._send(status, data, "application/json", head, {"Cache-Control": "no-store"})

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json({"error": message}, status)

    def _send(self, status: HTTPStatus, data: bytes, ctype: str, head: bool, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self._common_headers()
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _common_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("Referrer-Policy", "no-referrer")

    def _file(self, path: Path, ctype: str, head: bool, immutable: bool = False) -> None:
        fh = open_file(path)
        if fh is None:
            return self._error(HTTPStatus.NOT_FOUND, "not a file this room serves")
        with fh:
            size = _size(fh)
            try:
                part = byte_range(self.headers.get("Range"), size)
            except Unsatisfiable:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self._common_headers()
                self.end_headers()
                return
            self.send_response(HTTPStatus.PARTIAL_CONTENT if part.partial else HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(part.length))
            if part.partial:
                self.send_header("Content-Range", f"bytes {part.start}-{part.end}/{size}")
            self.send_header("Cache-Control", "public, max-age=31536000, immutable" if immutable else "no-cache")
            self._common_headers()
            self.end_headers()
            if head or not part.length:
                return
            fh.seek(part.start)
            try:
                _copy(fh, self.wfile, part.length)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser seeks by dropping a request half-read


def _copy(src: Any, dst: Any, length: int) -> None:
    left = length
    while left > 0:
        chunk = src.read(min(left, 256 << 10))
        if not chunk:
            break
        dst.write(chunk)
        left -= len(chunk)


def _size(fh: Any) -> int:
    import os

    return os.fstat(fh.fileno()).st_size


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


def make_server(room: Room, host: str = "127.0.0.1", port: int = 8000) -> RoomServer:
    """Bind the room's server (port 0: any free port); serve_forever() runs it."""
    try:
        return RoomServer((host, port), room)
    except OSError as exc:
        raise StoryboardError(f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                              + ("; choose another with --port" if port else "")) from exc


def serve(room: Room, host: str = "127.0.0.1", port: int = 8000,
          announce: Callable[[str], None] = print, watch: bool = True) -> None:
    """Run the review room until Ctrl-C: build, watch, serve.

    Raises:
        StoryboardError: rebuilds would pay without consent, or the port is taken (exit 2).
    """
    room.require_consent()
    server = make_server(room, host, port)
    room.start(watch=watch)
    announce(server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        room.stop()
