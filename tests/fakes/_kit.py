"""A kit for loopback fakes: a threaded HTTP server on 127.0.0.1, JSON helpers, and a fault switch.

    class Fake(LoopbackFake):
        def route(self, req: Request) -> Reply | None: ...   # answer one request (None: 404)

    with Fake() as fake:
        fake.url                                   # http://127.0.0.1:<random port>
        fake.faults.add("create", Fault.status(429, retry_after="0"))
        fake.faults.add("poll", Fault.reset_after(), times=2)
        fake.count("create"), fake.bodies("create")

A fault is taken by the next request to its endpoint (the name `route` gives it, via
`Request.endpoint`), in the order added:

    status(code, body, retry_after)   answer with that status (429 + Retry-After, 5xx, ...)
    reset_before()                    close the connection before reading the request
    reset_after()                     read the request, then close without an answer
    lose_answer()                     do the work (a create IS created), then close: the answer is lost
    slow(seconds)                     wait, then answer normally (slow polls)
    hostile(body, status)             answer with these raw bytes (non-JSON, deep nesting, a huge body)

Provider-specific outcomes (safety blocks, failed jobs) belong to each fake: they are answers,
not transport faults. Existing fakes could migrate by subclassing LoopbackFake.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    endpoint: str = ""

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.raw) if self.raw else None
        except ValueError:
            return None


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return self.body.encode() if isinstance(self.body, str) else json.dumps(self.body).encode()


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, body, dict(headers))


def google_error(status: int, message: str, reason: str | None = None) -> Reply:
    """Google's error envelope `{"error": {"code", "message", "status"}}`."""
    reasons = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
    return Reply(status, {"error": {"code": status, "message": message,
                                    "status": reason or reasons.get(status, "UNKNOWN")}})


@dataclass(frozen=True)
class Fault:
    action: str
    status: int = 0
    body: Any = None
    retry_after: str | None = None
    seconds: float = 0.0

    @classmethod
    def status_code(cls, status: int, body: Any = None, retry_after: str | None = None) -> Fault:
        return cls("status", status=status, body=body, retry_after=retry_after)

    @classmethod
    def reset_before(cls) -> Fault:
        return cls("reset_before")

    @classmethod
    def reset_after(cls) -> Fault:
        return cls("reset_after")

    @classmethod
    def lose_answer(cls) -> Fault:
        return cls("lose_answer")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls("slow", seconds=seconds)

    @classmethod
    def hostile(cls, body: bytes, status: int = 200) -> Fault:
        return cls("hostile", status=status, body=body)


class FaultSwitch:
    """Faults queued per endpoint; each request takes at most one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {}

    def add(self, endpoint: str, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._queues.setdefault(endpoint, deque()).extend([fault] * times)

    def take(self, endpoint: str) -> Fault | None:
        with self._lock:
            queue = self._queues.get(endpoint)
            return queue.popleft() if queue else None

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()


class LoopbackFake:
    """A threaded HTTP server on 127.0.0.1 (random port) that records requests and applies faults."""

    def __init__(self) -> None:
        self.faults = FaultSwitch()
        self.lock = threading.RLock()
        self.seen: list[Request] = []
        self.counts: Counter[str] = Counter()
        self._server: ThreadingHTTPServer | None = None

    # ---- what a fake fills in -----------------------------------------------------------------

    def endpoint(self, req: Request) -> str:
        """The name of the endpoint `req` hits (faults and counts are kept by it)."""
        return f"{req.method} {req.path}"

    def route(self, req: Request) -> Reply | None:
        raise NotImplementedError

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LoopbackFake:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- records ------------------------------------------------------------------------------

    def count(self, endpoint: str) -> int:
        with self.lock:
            return self.counts[endpoint]

    def bodies(self, endpoint: str) -> list[Any]:
        with self.lock:
            return [r.json for r in self.seen if r.endpoint == endpoint]


def _handler(fake: LoopbackFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            req = Request(self.command, url.path, parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()},
                          b"")
            req.endpoint = fake.endpoint(req)
            fault = fake.faults.take(req.endpoint)
            if fault is not None and fault.action == "reset_before":
                return self._drop()
            length = int(self.headers.get("Content-Length") or 0)
            req.raw = self.rfile.read(length) if length else b""
            with fake.lock:
                fake.seen.append(req)
                fake.counts[req.endpoint] += 1
            if fault is not None and fault.action == "reset_after":
                return self._drop()
            if fault is not None and fault.action == "slow":
                time.sleep(fault.seconds)
            if fault is not None and fault.action == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                reply = (Reply(fault.status, fault.body, headers) if fault.body is not None else
                         google_error(fault.status, "Resource has been exhausted" if fault.status == 429
                                      else "The service is currently unavailable."))
                reply.headers.update(headers)
                return self._send(reply)
            if fault is not None and fault.action == "hostile":
                return self._send(Reply(fault.status, fault.body))
            reply = fake.route(req)
            if fault is not None and fault.action == "lose_answer":
                return self._drop()
            self._send(reply or google_error(404, f"No route for {req.method} {req.path}"))

        def _send(self, reply: Reply) -> None:
            data = reply.encoded()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return Handler
