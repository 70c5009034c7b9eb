"""Shared machinery of the hosted providers: retries, rate limits, API errors, downloads, resume.

One policy decides what deserves another try, for every HTTP provider:

    429 408 500 502 503 504            retry: Retry-After honoured (seconds or HTTP date),
    timeouts, resets, refusals         else exponential backoff with jitter; RetryPolicy.tries
    any other non-2xx (400 401 403…)   ProviderError at once, quoting the API's own message

`HttpProvider` is the base the Google and gateway providers share. It owns the settings, one
lazily built `httpx.Client` and one `RateLimiter` per instance (a build makes one instance per
provider and shares it between its threads), and `render()`'s skeleton:

    journal holds an operation? ── yes ──> poll it ── 404 (gone) ──> submit anew
               │ no                           │
               └──> submit ──> journal it ───>┴──> poll until finished ──> outcome() ──> fetch()

Subclasses fill in `submit`, `poll`, `outcome` and `fetch`. Credentials never enter an error
message, a log line or the journal: every ProviderError leaving `render` is scrubbed of them.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import httpx

from storyboard.errors import MediaError, MissingKeyError, ProviderError, StoryboardError
from storyboard.job import Price, RenderContext, RenderJob, RenderResult
from storyboard.providers import ProviderSettings
from storyboard.sniff import sniff

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `tries` attempts in all, waits of base * 2**n capped at `cap`, jittered."""

    tries: int = 6
    base: float = 2.0
    cap: float = 60.0
    max_retry_after: float = 600.0
    """A longer Retry-After fails at once: that quota will not come back within this build."""

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed try `attempt` (0-based): half fixed, half random."""
        ceiling = min(self.cap, self.base * 2**attempt)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def api_message(response: httpx.Response) -> str:
    """The API's own words from a failed response: `{"error":{"message"}}`, `{"error":"..."}`, text."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, list) and body:  # Google sometimes wraps the envelope in a list
        body = body[0]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            status = error.get("status")
            return f"{error['message']}" + (f" ({status})" if isinstance(status, str) else "")
        for candidate in (error, body.get("message"), body.get("detail")):
            if isinstance(candidate, str) and candidate:
                return candidate
    text = response.text.strip()
    return text[:500] if text else response.reason_phrase or "no message"


def _where(request: httpx.Request | None) -> str:
    return f"{request.method} {request.url.path}" if request is not None else "request"


def _request_of(error_or_response: Any) -> httpx.Request | None:
    try:
        return error_or_response.request
    except RuntimeError:  # httpx raises when no request is attached
        return None


def raise_for_api_error(response: httpx.Response, provider: str) -> None:
    """Pass a 2xx response; map any other to ProviderError with the API's message.

    429/408/5xx come out `retryable`, with `retry_after` from the Retry-After header.
    """
    if response.is_success:
        return
    response.read()
    status = response.status_code
    retryable = status in RETRY_STATUSES
    raise ProviderError(
        f"{provider}: HTTP {status} from {_where(_request_of(response))}: {api_message(response)}",
        provider=provider, status=status, retryable=retryable,
        retry_after=retry_after(response.headers.get("Retry-After")) if retryable else None,
    )


def _transport_error(exc: httpx.HTTPError, provider: str, retryable: bool) -> ProviderError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    error = ProviderError(f"{provider}: {_where(_request_of(exc))} {kind}: {type(exc).__name__}: {exc}",
                          provider=provider, retryable=retryable)
    error.__cause__ = exc
    return error


def with_retries(attempt: Callable[[], T], *, provider: str, sleep: Callable[[float], None],
                 rng: random.Random | None = None, policy: RetryPolicy = RetryPolicy(),
                 secrets: tuple[str, ...] = ()) -> T:
    """Call `attempt` until it returns; retry transient faults, raise the rest at once.

    Transient: ProviderError(retryable=True) and httpx timeouts, resets and refused connections.
    `sleep` is the build's (it raises Cancelled on Ctrl-C, which passes straight through);
    `secrets` are masked in the warning logged before each retry.
    """
    rng = rng or random.Random()
    error: ProviderError | None = None
    for n in range(policy.tries):
        try:
            return attempt()
        except _TRANSIENT as exc:
            error = _transport_error(exc, provider, retryable=True)
        except httpx.HTTPError as exc:  # a bad URL or protocol misuse: trying again cannot help
            raise _transport_error(exc, provider, retryable=False) from exc
        except ProviderError as exc:
            if not exc.retryable:
                raise
            error = exc
        if error.retry_after is not None and error.retry_after > policy.max_retry_after:
            raise ProviderError(f"{error.message}; the API asks to wait {error.retry_after:.0f} s, so this "
                                "build gives up: try again later", provider=provider, status=error.status,
                                retryable=True, retry_after=error.retry_after) from error
        if n + 1 < policy.tries:
            wait = error.retry_after if error.retry_after is not None else policy.backoff(n, rng)
            log.warning("%s; retrying in %.1f s (try %d of %d)", redact(error.message, secrets), wait, n + 2,
                        policy.tries)
            sleep(wait)
    assert error is not None
    raise ProviderError(f"{error.message} (gave up after {policy.tries} tries)", provider=provider,
                        status=error.status, retryable=True) from error


def request_with_retries(client: httpx.Client, method: str, url: str, *, provider: str,
                         sleep: Callable[[float], None], limiter: RateLimiter | None = None,
                         rng: random.Random | None = None, policy: RetryPolicy = RetryPolicy(),
                         secrets: tuple[str, ...] = (), **kwargs: Any) -> httpx.Response:
    """Send a request until it gets a 2xx; every try waits for `limiter` first. Returns the response."""

    def attempt() -> httpx.Response:
        if limiter is not None:
            limiter.acquire(sleep)
        response = client.request(method, url, **kwargs)
        raise_for_api_error(response, provider)
        return response

    return with_retries(attempt, provider=provider, sleep=sleep, rng=rng, policy=policy, secrets=secrets)


def response_json(response: httpx.Response, provider: str) -> dict[str, Any]:
    """The JSON object in a 2xx response, or ProviderError if it is something else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderError(f"{provider}: {_where(_request_of(response))} answered {response.status_code} "
                            f"without a JSON object: {response.text[:200]!r}", provider=provider)
    return body


class RateLimiter:
    """At most `rpm` requests in any rolling minute, shared by every thread that calls acquire().

    Each caller reserves a slot under the lock and sleeps outside it, so waiting callers
    never block each other's bookkeeping. `rpm` None or 0 means no limit.
    """

    def __init__(self, rpm: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._burst = max(1, int(rpm)) if rpm else 0
        self._period = 60.0 * self._burst / rpm if rpm else 0.0
        self._slots: deque[float] = deque(maxlen=self._burst or 1)

    def acquire(self, sleep: Callable[[float], None] | None = None) -> float:
        """Wait for the next free slot (with `sleep`, default the limiter's); returns seconds waited."""
        if not self._burst:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._slots[0] + self._period) if len(self._slots) == self._burst else now
            self._slots.append(slot)
        if slot > now:
            (sleep or self._sleep)(slot - now)
        return slot - now


def download(client: httpx.Client, url: str, dest: Path, *, provider: str, sleep: Callable[[float], None],
             headers: Mapping[str, str] | None = None, trusted: Callable[[httpx.URL], bool] | None = None,
             progress: Callable[[float | None], None] | None = None, rng: random.Random | None = None,
             policy: RetryPolicy = RetryPolicy(), max_redirects: int = 5,
             secrets: tuple[str, ...] = ()) -> None:
    """Stream `url` into `dest` (following redirects) and check it arrived whole and is an MP4.

    `headers` (credentials) go only to hosts `trusted` accepts (default: `url`'s origin), never
    to another host a redirect points at. A short body is retried; on failure `dest` is removed.
    """
    first = httpx.URL(url)

    def same_origin(target: httpx.URL) -> bool:
        return (target.scheme, target.host, target.port) == (first.scheme, first.host, first.port)

    allowed = trusted or same_origin

    def attempt() -> None:
        target = first
        for _ in range(max_redirects + 1):
            send = dict(headers or {}) if allowed(target) else None
            with client.stream("GET", target, headers=send, follow_redirects=False) as response:
                if response.is_redirect and "Location" in response.headers:
                    target = target.join(response.headers["Location"])
                    continue
                raise_for_api_error(response, provider)
                _stream_to(response, dest, provider, progress)
                return
        raise ProviderError(f"{provider}: more than {max_redirects} redirects downloading the video",
                            provider=provider)

    try:
        with_retries(attempt, provider=provider, sleep=sleep, rng=rng, policy=policy, secrets=secrets)
        check_mp4(dest, provider)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _stream_to(response: httpx.Response, dest: Path, provider: str,
               progress: Callable[[float | None], None] | None) -> None:
    length = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
    expected = int(length) if length.isdigit() and not encoded else None
    received, shown = 0, -1.0
    with open(dest, "wb") as fh:
        for chunk in response.iter_bytes():
            fh.write(chunk)
            received += len(chunk)
            if progress and expected:
                fraction = min(1.0, received / expected)
                if fraction - shown >= 0.05 or fraction == 1.0:
                    shown = fraction
                    progress(fraction)
    if expected is not None and received != expected:
        raise ProviderError(f"{provider}: download of {_where(_request_of(response))} stopped at {received} "
                            f"of {expected} bytes", provider=provider, retryable=True)


def check_mp4(path: Path, provider: str) -> None:
    """ProviderError unless `path` is an MP4 (an `ftyp` box; decoded by storyboard.media once it exists)."""
    if sniff(path) != "mp4":
        raise ProviderError(f"{provider}: the downloaded video is not an MP4 (no 'ftyp' box)", provider=provider)
    try:
        from storyboard.media import probe
    except ModuleNotFoundError as exc:
        if exc.name != "storyboard.media":
            raise
        return
    try:
        probe(path)
    except MediaError as exc:
        raise ProviderError(f"{provider}: the downloaded video does not decode: {exc.message}",
                            provider=provider) from exc


def write_mp4(data: bytes, dest: Path, provider: str) -> None:
    """Write video bytes a provider returned inline to `dest` and check them like a download."""
    try:
        dest.write_bytes(data)
        check_mp4(dest, provider)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


@functools.lru_cache(maxsize=1)
def _prices() -> dict[str, Any]:
    return json.loads(resources.files("storyboard").joinpath("data/prices.json").read_text())


def per_second(provider: str, model: str, resolution: str, audio: bool = True) -> float | None:
    """USD per output second from storyboard/data/prices.json, or None for an unknown model."""
    table = _prices().get(provider, {}).get(model)
    if not isinstance(table, dict):
        return None
    rates = table.get("audio" if audio else "silent") or table.get("audio", {})
    return rates.get(resolution)


def utc_iso(when: datetime | None = None) -> str:
    """An ISO 8601 UTC timestamp with a Z, to the second."""
    return (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


class HttpProvider:
    """Base of the hosted providers: settings, one client, one rate limiter, resume by journal.

    Args:
        settings: the provider's `[providers.NAME]` table (validated `Settings`).
        client: an httpx.Client to use (tests pass one with a MockTransport); else one is
            built on first use, never at import.
        env: where credentials and `STORYBOARD_<NAME>_BASE_URL` are read.
        rng: the randomness of the retry jitter (tests pass a seeded one).
    """

    name = ""
    default_model = ""
    default_base_url = ""
    key_env: tuple[str, ...] = ()
    Settings: type[ProviderSettings] = ProviderSettings
    labels_output = False
    default_concurrency = 2
    default_rpm: float = 10
    default_poll_interval = 10.0
    default_timeout = 60.0
    max_wait = 1800.0
    """Seconds of polling before giving up on one build (the journal keeps the operation)."""
    trusted_suffixes: tuple[str, ...] = ()
    """HTTPS host suffixes that may receive the credentials besides the base URL's own host."""
    policy = RetryPolicy()

    def __init__(self, settings: ProviderSettings | None = None, *, client: httpx.Client | None = None,
                 env: Mapping[str, str] = os.environ, rng: random.Random | None = None) -> None:
        self.settings = settings if settings is not None else self.Settings()
        self.env = env
        self.rng = rng or random.Random()
        self._client = client
        self._client_lock = threading.Lock()
        self.limiter = RateLimiter(self.settings.rpm if self.settings.rpm is not None else self.default_rpm)

    # ---- configuration ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """STORYBOARD_<NAME>_BASE_URL, else the table's `base_url`, else the real service."""
        env = self.env.get(f"STORYBOARD_{self.name.upper()}_BASE_URL")
        return (env or self.settings.base_url or self.default_base_url).rstrip("/")

    @property
    def poll_interval(self) -> float:
        interval = self.settings.poll_interval
        return self.default_poll_interval if interval is None else interval

    @property
    def concurrency(self) -> int:
        return self.settings.concurrency or self.default_concurrency

    @property
    def client(self) -> httpx.Client:
        """The provider's one httpx.Client, built on first use."""
        with self._client_lock:
            if self._client is None:
                timeout = httpx.Timeout(self.settings.timeout or self.default_timeout, connect=10.0)
                self._client = httpx.Client(timeout=timeout, follow_redirects=True,
                                            headers={"User-Agent": "storyboard"})
            return self._client

    def close(self) -> None:
        """Close the client if this provider built one."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def api_key(self) -> str:
        """The first non-empty variable of `key_env`; MissingKeyError naming it otherwise."""
        for var in self.key_env:
            if self.env.get(var, "").strip():
                return self.env[var].strip()
        others = f" (or {', '.join(self.key_env[1:])})" if len(self.key_env) > 1 else ""
        raise MissingKeyError(f"{self.name} needs an API key: set {self.key_env[0]}{others}")

    def check_key(self) -> None:
        """Raise MissingKeyError if the credentials are missing; makes no network call."""
        self.api_key()

    def secrets(self) -> tuple[str, ...]:
        """Every credential value in the environment, to scrub from messages."""
        return tuple(v.strip() for var in self.key_env if (v := self.env.get(var, "")).strip())

    def trusts(self, url: httpx.URL) -> bool:
        """Whether credentials may go to `url`: the base URL's origin, or a trusted HTTPS host."""
        base = httpx.URL(self.base_url)
        if (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port):
            return True
        return bool(self.trusted_suffixes) and url.scheme == "https" and url.host.endswith(self.trusted_suffixes)

    def request(self, method: str, url: str, ctx: RenderContext, *, limited: bool = False,
                **kwargs: Any) -> httpx.Response:
        """One API call with retries; `limited` calls count against the requests-per-minute limit."""
        return request_with_retries(self.client, method, url, provider=self.name, sleep=ctx.sleep,
                                    limiter=self.limiter if limited else None, rng=self.rng,
                                    policy=self.policy, secrets=self.secrets(), **kwargs)

    def download(self, url: str, dest: Path, ctx: RenderContext, headers: Mapping[str, str]) -> None:
        """Stream a result to `dest` with retries, reporting 'downloading' progress."""
        ctx.progress("downloading", 0.0)
        download(self.client, url, dest, provider=self.name, sleep=ctx.sleep, headers=headers,
                 trusted=self.trusts, progress=lambda f: ctx.progress("downloading", f), rng=self.rng,
                 policy=self.policy, secrets=self.secrets())

    # ---- the render skeleton ----------------------------------------------------------------

    def render(self, job: RenderJob, dest: Path, ctx: RenderContext) -> RenderResult:
        """Submit (or resume), poll, download to `dest`; see the module docstring for the flow.

        Raises:
            MissingKeyError: the credentials are not set.
            ProviderError: the API refused or failed the job (its message quoted), or a
                transient fault outlasted the retries (`retryable=True`).
        """
        with self._public_errors(ctx):
            self.check_key()
            operation, finished = self.wait_for(job, ctx)
            try:
                output = self.outcome(finished)
            except ProviderError:
                ctx.journal.clear()  # a finished operation is final: the next build submits afresh
                raise
            try:
                handle = self.fetch(output, job, dest, ctx)
            except ProviderError as exc:
                if exc.status == 404:  # the result has expired: resuming can never fetch it
                    ctx.journal.clear()
                raise
            return RenderResult(cost=self.price(job), operation=operation, handle=handle)

    def wait_for(self, job: RenderJob, ctx: RenderContext) -> tuple[str, Any]:
        """Resume the journaled operation, or submit and journal one; poll until it finishes."""
        entry = ctx.journal.read() or {}
        operation = entry.get("operation") if entry.get("provider") == self.name else None
        resumed = bool(operation)
        if resumed:
            log.info("shot '%s': resuming %s operation %s from the journal", ctx.shot_id, self.name, operation)
            ctx.progress("rendering", None)
        else:
            operation = self._submit(job, ctx)
        deadline = ctx.clock() + self.max_wait
        while True:
            try:
                finished, fraction = self.poll(operation, job, ctx)
            except ProviderError as exc:
                if not (resumed and exc.status == 404):
                    raise
                log.warning("shot '%s': journaled %s operation %s is gone (%s); submitting again",
                            ctx.shot_id, self.name, operation, exc.message)
                ctx.journal.clear()
                operation, resumed = self._submit(job, ctx), False
                continue
            if finished is not None:
                return operation, finished
            if ctx.clock() > deadline:
                raise ProviderError(f"{self.name}: operation {operation} still running after "
                                    f"{self.max_wait / 60:.0f} min; it stays journaled, so the next build "
                                    "resumes it", provider=self.name, retryable=True)
            ctx.progress("rendering", fraction)
            ctx.sleep(self.poll_interval)

    def _submit(self, job: RenderJob, ctx: RenderContext) -> str:
        operation = self.submit(job, ctx)
        ctx.journal.write({"operation": operation, "provider": self.name, "model": job.model,
                           "submitted": utc_iso()})
        ctx.progress("submitted", None)
        return operation

    @contextmanager
    def _public_errors(self, ctx: RenderContext) -> Iterator[None]:
        """Name the shot in a ProviderError and scrub credentials from it and its causes."""
        try:
            yield
        except ProviderError as exc:
            _scrub(exc, self.secrets())
            if not exc.message.startswith("shot '"):
                _set_message(exc, f"shot '{ctx.shot_id}': {exc.message}")
            raise

    # ---- what each API fills in -------------------------------------------------------------

    def submit(self, job: RenderJob, ctx: RenderContext) -> str:
        """Start the job; return the provider's operation or task id."""
        raise NotImplementedError

    def poll(self, operation: str, job: RenderJob, ctx: RenderContext) -> tuple[Any | None, float | None]:
        """(the finished operation, or None while it runs; progress 0..1 or None)."""
        raise NotImplementedError

    def outcome(self, finished: Any) -> Any:
        """What to fetch from a finished operation; ProviderError if it failed or was blocked."""
        raise NotImplementedError

    def fetch(self, output: Any, job: RenderJob, dest: Path, ctx: RenderContext) -> dict[str, Any] | None:
        """Write the video to `dest`; return the provider's handle on it, if any."""
        raise NotImplementedError

    def price(self, job: RenderJob) -> Price | None:
        raise NotImplementedError


def _set_message(exc: StoryboardError, message: str) -> None:
    exc.message = message
    exc.args = (message,)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _scrub(exc: BaseException | None, secrets: tuple[str, ...]) -> None:
    """Mask every secret in the messages of `exc` and the StoryboardErrors it was chained from."""
    seen: set[int] = set()
    while isinstance(exc, StoryboardError) and id(exc) not in seen:
        seen.add(id(exc))
        if (message := redact(exc.message, secrets)) != exc.message:
            _set_message(exc, message)
        exc = exc.__cause__ or exc.__context__
