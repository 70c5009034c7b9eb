"""What a loopback fake hears and says: a request, a reply, an API refusal, and queued faults."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    """The request's headers (case-insensitive `get`)."""
    raw: bytes
    endpoint: str = ""
    body: Any = None
    """What the fake parsed from `raw` (JSON by default), as `bodies()` reports it."""

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.raw) if self.raw else None
        except ValueError:
            return None

    def header_dict(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    file: Path | None = None
    """A file to send as the body (video/mp4)."""

    def encoded(self) -> bytes:
        if self.file is not None:
            return self.file.read_bytes()
        if isinstance(self.body, bytes):
            return self.body
        return self.body.encode() if isinstance(self.body, str) else json.dumps(self.body).encode()


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, body, dict(headers))


GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def google_error(status: int, message: str, reason: str | None = None) -> Reply:
    """Google's error envelope `{"error": {"code", "message", "status"}}`."""
    return Reply(status, {"error": {"code": status, "message": message,
                                    "status": reason or GOOGLE_STATUS.get(status, "UNKNOWN")}})


class Refusal(Exception):
    """An API error a route raises; the fake's `error_reply` puts it in the API's envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Fault:
    action: str
    status: int = 0
    body: Any = None
    retry_after: str | None = None
    seconds: float = 0.0
    message: str | None = None

    @classmethod
    def status_code(cls, status: int, body: Any = None, retry_after: str | None = None,
                    message: str | None = None) -> Fault:
        return cls("status", status=status, body=body, retry_after=retry_after, message=message)

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
    def truncate(cls) -> Fault:
        return cls("truncate")

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
