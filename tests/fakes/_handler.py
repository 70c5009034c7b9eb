"""The HTTP side of tests.fakes._kit: one request read, held, recorded, faulted and answered."""

from __future__ import annotations

import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._wire import Fault, Refusal, Reply, Request

if TYPE_CHECKING:
    from tests.fakes._kit import Handler as RouteHandler
    from tests.fakes._kit import LoopbackFake


def handler_for(fake: LoopbackFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
        _in_flight_endpoint: str | None = None

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (BrokenPipeError, ConnectionResetError):  # the client left (a timeout, a killed build)
                self.close_connection = True
            finally:
                if self._in_flight_endpoint is not None:
                    fake._answered(self._in_flight_endpoint)
                    self._in_flight_endpoint = None

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
            req = Request(self.command, url.path, parse_qs(url.query), self.headers, b"")
            if url.path.startswith("/_fake/"):
                return self._control(req)
            try:
                found = fake.resolve(req)
            except Refusal as exc:
                found = None
                refused = exc
            else:
                refused = fake.refusal(404, f"No route for {req.method} {req.path}")
            if found is None:
                self._read(req)
                return self._send(fake.error_reply(refused))
            req.endpoint, handle = found
            self._read(req)
            passage = fake._pass_hold(req.endpoint, self.connection)
            if passage == "drop":
                self.close_connection = True
                return
            if passage == "counted":
                self._in_flight_endpoint = req.endpoint
            fault = fake.faults.take(req.endpoint)
            if fault is not None and fault.action == "reset_before":
                return self._drop()
            req.body = fake.parse(req)
            with fake.lock:
                fake.seen.append(req)
                fake.counts[req.endpoint] += 1
            if fault is not None and fault.action == "reset_after":
                return self._drop()
            if fault is not None and fault.action == "slow":
                time.sleep(fault.seconds)
            if fault is not None and fault.action == "status":
                return self._send(self._fault_reply(fault))
            if fault is not None and fault.action == "hostile":
                return self._send(Reply(fault.status, fault.body))
            reply = self._answer(handle, req)
            if fault is not None and fault.action == "lose_answer":
                return self._drop()
            self._send(reply, truncate=fault is not None and fault.action == "truncate")

        def _read(self, req: Request) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            req.raw = self.rfile.read(length) if length else b""

        def _control(self, req: Request) -> None:
            self._read(req)
            try:
                if req.method == "POST" and req.path == "/_fake/config":
                    fake.configure(dict(req.json or {}))
                elif req.path != "/_fake/stats":
                    raise Refusal(404, f"No control route {req.path}")
                self._send(Reply(200, fake.stats()))
            except Refusal as exc:
                self._send(Reply(exc.status, {"error": exc.message}))

        @staticmethod
        def _answer(handle: RouteHandler, req: Request) -> Reply:
            try:
                reply = handle(req)
            except Refusal as exc:
                return fake.error_reply(exc)
            except Exception as exc:  # noqa: BLE001 - a bug in the fake: say so instead of dropping the connection
                return fake.error_reply(fake.refusal(500, f"fake {type(fake).__name__} crashed: "
                                                          f"{type(exc).__name__}: {exc}"))
            return reply or fake.error_reply(fake.refusal(404, f"No route for {req.method} {req.path}"))

        @staticmethod
        def _fault_reply(fault: Fault) -> Reply:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            if fault.body is not None:
                return Reply(fault.status, fault.body, headers)
            message = fault.message or fake.messages.get(fault.status, f"fake failure {fault.status}")
            reply = fake.error_reply(fake.refusal(fault.status, message))
            reply.headers.update(headers)
            return reply

        def _send(self, reply: Reply, truncate: bool = False) -> None:
            data = reply.encoded()
            self.send_response(reply.status)
            self.send_header("Content-Type", "video/mp4" if reply.file is not None else reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if truncate and reply.status == 200 and data:
                self.wfile.write(data[: len(data) // 2])
                return self._drop()
            self.wfile.write(data)

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return Handler
