"""The kit every loopback fake is built on: a threaded HTTP server on 127.0.0.1, request records,
fault knobs and the /_fake control routes, so each fake holds only its API.

    class Fake(LoopbackFake):
        knobs = ("pending_polls",)                  # settable by configure(), restored by reset()
        def resolve(self, req) -> (endpoint, handler) | None    # or endpoint() + route()

    with Fake() as fake:
        fake.url                                    # http://127.0.0.1:<random port>
        fake.fail("submit", 429, retry_after="0")   # or fake.faults.add("submit", Fault.status_code(429))
        fake.faults.add("poll", Fault.reset_after(), times=2)
        fake.count("submit"), fake.bodies("submit"), fake.headers("submit"), fake.submissions

A fault is taken by the next request to its endpoint, in the order added:

    status_code(code, body, retry_after, message)  answer with that status, in the fake's error envelope
    reset_before()      close the connection without recording the request (it never arrived)
    reset_after()       read the request, then close without an answer (what `reset_connection` queues)
    lose_answer()       do the work (a create IS created), then close: the answer is lost
    slow(seconds)       wait, then answer normally (slow polls)
    truncate()          send half of a 200 body while promising all of it (a cut download)
    hostile(body, status)  answer with these raw bytes (non-JSON, deep nesting, a huge body)

`hold(endpoint)` parks requests until `release()`; `in_flight()` tells how many are past it.
Outcomes of the API itself (safety blocks, failed jobs) are answers, so they belong to each fake.
GET /_fake/stats answers `stats()`; POST /_fake/config applies `configure()` (for a fake that
runs in another process: `python -m tests.fakes.NAME --port N`).
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar

from tests.fakes._handler import handler_for
from tests.fakes._wire import (GOOGLE_STATUS, Fault, FaultSwitch, Refusal, Reply, Request, google_error,
                               json_reply)

__all__ = ["GOOGLE_STATUS", "Fault", "FaultSwitch", "LoopbackFake", "Refusal", "Reply", "Request", "google_error",
           "json_reply", "serve"]


Handler = Callable[[Request], "Reply | None"]


class LoopbackFake:
    """A threaded HTTP server on 127.0.0.1 (random port) that records requests and applies faults.

    Subclasses set their knobs (and anything `clear` needs) before calling `super().__init__()`.
    """

    knobs: ClassVar[tuple[str, ...]] = ()
    """Attributes `configure` may set and `reset` restores to their value at construction."""
    actions: ClassVar[tuple[str, ...]] = ()
    """Methods without arguments `configure` may call ({"finish_pending": true})."""
    truncated: ClassVar[tuple[str, ...]] = ("download",)
    """The endpoints `truncate()` cuts short."""
    messages: ClassVar[dict[int, str]] = {401: "Request had invalid authentication credentials.",
                                          429: "Resource has been exhausted (e.g. check quota).",
                                          500: "Internal error encountered.",
                                          503: "The service is currently unavailable."}
    """The message of a status fault that names none."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.faults = FaultSwitch()
        self.lock = threading.RLock()
        self.seen: list[Request] = []
        self.counts: Counter[str] = Counter()
        self.submissions: Counter[str] = Counter()
        """Paid jobs the fake accepted, per prompt (the fake counts them where it creates one)."""
        self._defaults = {knob: getattr(self, knob) for knob in self.knobs}
        self._hold = threading.Condition()
        self._held: set[str] = set()
        self._guarded: set[str] = set()
        self._in_flight: Counter[str] = Counter()
        self.clear()
        self._server = ThreadingHTTPServer((host, port), handler_for(self))
        self._server.daemon_threads = True

    # ---- what a fake fills in -----------------------------------------------------------------

    def resolve(self, req: Request) -> tuple[str, Handler] | None:
        """(endpoint name, handler) for `req`, or None (404). By default: endpoint() and route()."""
        name = self.endpoint(req)
        return (name, self.route) if name is not None else None

    def endpoint(self, req: Request) -> str | None:
        """The name of the endpoint `req` hits (faults and counts are kept by it)."""
        return f"{req.method} {req.path}"

    def route(self, req: Request) -> Reply | None:
        raise NotImplementedError

    def parse(self, req: Request) -> Any:
        """The body `bodies()` reports: JSON, or None."""
        return req.json

    def refusal(self, status: int, message: str) -> Refusal:
        """The error a status fault (or an unknown route) raises, in the fake's own type."""
        return Refusal(status, message)

    def error_reply(self, exc: Refusal) -> Reply:
        """The API's error envelope for `exc` (Google's by default)."""
        return google_error(exc.status, exc.message, getattr(exc, "reason", None))

    def clear(self) -> None:
        """Forget the API's own state (jobs, files); called by reset()."""

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"counts": dict(self.counts), "submissions": dict(self.submissions)}

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Any:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name=type(self).__name__,
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def take(self) -> Request:
        """The one request the fake has seen since the last take (a parity test's capture)."""
        with self.lock:
            [request] = self.seen
            self.seen.clear()
        return request

    # ---- knobs --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget requests, faults and the API's state; restore the knobs; let held requests go."""
        with self.lock:
            self.seen.clear()
            self.counts.clear()
            self.submissions.clear()
            for knob, value in self._defaults.items():
                setattr(self, knob, value)
            self.clear()
        self.faults.clear()
        self.release()
        with self._hold:
            self._guarded.clear()

    def fail(self, endpoint: str, status: int, *, times: int = 1, retry_after: str | None = None,
             message: str | None = None) -> None:
        """Answer the next `times` requests to `endpoint` with `status` (in the API's error envelope)."""
        self.faults.add(endpoint, Fault.status_code(status, retry_after=retry_after, message=message), times)

    def reset_connection(self, endpoint: str, *, times: int = 1) -> None:
        """Close the next `times` connections to `endpoint` without answering."""
        self.faults.add(endpoint, Fault.reset_after(), times)

    def truncate(self, *, times: int = 1) -> None:
        """Send only half of the next `times` videos while promising the whole length."""
        for endpoint in self.truncated:
            self.faults.add(endpoint, Fault.truncate(), times)

    def configure(self, config: dict[str, Any]) -> None:
        """Apply knobs from JSON (POST /_fake/config):
        {"reset": true, "fail": [{"endpoint", "status", "times", "retry_after", "message"}],
         "reset_connection": [{"endpoint", "times"}], "truncate": 1, "hold": ["submit"], "release": true,
         <knob>: value, <action>: true}
        """
        config = dict(config)
        if config.pop("reset", False):
            self.reset()
        for fault in config.pop("fail", []):
            self.fail(fault["endpoint"], fault["status"], times=fault.get("times", 1),
                      retry_after=fault.get("retry_after"), message=fault.get("message"))
        for fault in config.pop("reset_connection", []):
            self.reset_connection(fault["endpoint"], times=fault.get("times", 1))
        if times := config.pop("truncate", 0):
            self.truncate(times=times)
        for endpoint in config.pop("hold", []):
            self.hold(endpoint)
        if config.pop("release", False):
            self.release()
        for key, value in config.items():
            if key in self.knobs:
                setattr(self, key, value)
            elif key in self.actions:
                if value:
                    getattr(self, key)()
            else:
                raise Refusal(400, f"unknown knob {key!r}")

    def hold(self, endpoint: str) -> None:
        """Keep new requests to `endpoint` waiting, not yet counted, until release().

        From the first hold until reset(), a request to `endpoint` whose client has gone (a build
        killed meanwhile) is dropped uncounted, as if it had never left; with in_flight() a test
        can kill a build at a moment when no submission is between the service and the journal:

            fake.hold("submit"); wait for in_flight("submit") == 0 and the journal; kill; fake.release()
        """
        with self._hold:
            self._held.add(endpoint)
            self._guarded.add(endpoint)

    def release(self) -> None:
        """Let every held request through (those whose client is gone are dropped)."""
        with self._hold:
            self._held.clear()
            self._hold.notify_all()

    def in_flight(self, endpoint: str) -> int:
        """Requests to a held (or once held) `endpoint` past the hold and not yet answered."""
        with self._hold:
            return self._in_flight[endpoint]

    def _pass_hold(self, endpoint: str, connection: socket.socket) -> str:
        """Whether a request may pass: free (never held), counted (in flight until answered), drop (client gone)."""
        with self._hold:
            if endpoint not in self._guarded:
                return "free"
            while endpoint in self._held:
                self._hold.wait()
            try:
                gone = connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                return "drop"
            self._in_flight[endpoint] += 1
            return "counted"

    def _answered(self, endpoint: str) -> None:
        with self._hold:
            self._in_flight[endpoint] -= 1

    # ---- records ------------------------------------------------------------------------------

    def count(self, endpoint: str) -> int:
        with self.lock:
            return self.counts[endpoint]

    def total(self) -> int:
        """Every request to the API so far (the /_fake routes excepted)."""
        with self.lock:
            return sum(self.counts.values())

    def bodies(self, endpoint: str) -> list[Any]:
        """The parsed bodies received at `endpoint`, oldest first."""
        with self.lock:
            return [r.body for r in self.seen if r.endpoint == endpoint]

    def headers(self, endpoint: str) -> list[dict[str, str]]:
        """The headers of each request to `endpoint` (names in lower case), oldest first."""
        with self.lock:
            return [r.header_dict() for r in self.seen if r.endpoint == endpoint]

    @property
    def requests(self) -> list[tuple[str, Any]]:
        """(endpoint, body) of every request, oldest first."""
        with self.lock:
            return [(r.endpoint, r.body) for r in self.seen]


def serve(fake: LoopbackFake) -> None:
    """Serve until killed; print the URL first (for subprocess tests)."""
    print(fake.url, flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()
