"""Shared machinery of the hosted providers: retries, API errors, downloads, prices.

One policy decides what deserves another try, for every HTTP provider:

    429 408 500 502 503 504            retry: Retry-After honoured (seconds or HTTP date),
    timeouts, resets, refusals         else exponential backoff with jitter; RetryPolicy.tries
    any other non-2xx (400 401 403…)   ProviderError at once, quoting the API's own message

A paid create without an idempotency key (`idempotent=False`) is retried only when it provably
never reached the service: a refused or failed connection (DNS included), or 408/429/503
answered by the server. Any other fault after the request left (a read timeout, a reset, a
500/502/504) raises UncertainSubmit at once: the job may exist and be billed, and a retry
could bill it twice.

Every answer is read within the bounds of storyboard.providers._transfer, and no API call
follows a redirect to another origin. `HttpProvider` (storyboard.providers._base) and the
`RateLimiter` (storyboard.providers._ratelimit) build on this module.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from storyboard.errors import MediaError, ProviderError
from storyboard.providers._ratelimit import RateLimiter  # re-exported: its home before the split
from storyboard.providers._transfer import Limits, capped_chunks, decode_json, json_or_none, send, where
from storyboard.sniff import sniff

if TYPE_CHECKING:
    import httpx  # imported where a request is made: a plan of an HTTP provider's board never needs it

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NOT_RECEIVED_STATUSES = frozenset({408, 429, 503})
"""Answers that say the server did not take the request on: a create may be sent again."""


def _transient() -> tuple[type[Exception], ...]:
    """httpx's timeouts, resets and refused connections: worth another try."""
    import httpx

    return (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _not_sent() -> tuple[type[Exception], ...]:
    """Transport faults before the request left this machine: no connection, so nothing was received."""
    import httpx

    return (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class UncertainSubmit(ProviderError):
    """A create left, and its answer was lost or was a server fault: the job may exist and be billed."""


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
    body = json_or_none(response)
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
    if "\0" in text or "\ufffd" in text:  # a video or an image where words were due: say what, not the bytes
        return f"{len(response.content)} bytes of {response.headers.get('Content-Type') or 'binary data'}"
    return text[:500] if text else response.reason_phrase or "no message"


_where = where


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
    import httpx

    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    error = ProviderError(f"{provider}: {_where(_request_of(exc))} {kind}: {type(exc).__name__}: {exc}",
                          provider=provider, retryable=retryable)
    error.__cause__ = exc
    return error


def _uncertain(error: ProviderError, provider: str) -> UncertainSubmit:
    uncertain = UncertainSubmit(error.message, provider=provider, status=error.status)
    uncertain.__cause__ = error.__cause__ or error
    return uncertain


def with_retries(attempt: Callable[[], T], *, provider: str, sleep: Callable[[float], None],
                 rng: random.Random | None = None, policy: RetryPolicy = RetryPolicy(),
                 secrets: tuple[str, ...] = (), idempotent: bool = True) -> T:
    """Call `attempt` until it returns; retry transient faults, raise the rest at once.

    Transient: ProviderError(retryable=True) and httpx timeouts, resets and refused connections.
    `sleep` is the build's (it raises Cancelled on Ctrl-C, which passes straight through);
    `secrets` are masked in the warning logged before each retry. With `idempotent=False` (a
    paid create) only faults that prove the request was not received are retried; the others
    raise UncertainSubmit (see the module docstring).
    """
    import httpx

    rng = rng or random.Random()
    error: ProviderError | None = None
    for n in range(policy.tries):
        try:
            return attempt()
        except _transient() as exc:
            error = _transport_error(exc, provider, retryable=True)
            if not idempotent and not isinstance(exc, _not_sent()):
                raise _uncertain(error, provider) from exc
        except httpx.HTTPError as exc:  # a bad URL or protocol misuse: trying again cannot help
            raise _transport_error(exc, provider, retryable=False) from exc
        except httpx.InvalidURL as exc:  # a Location httpx cannot parse (it reads one even when not following)
            raise ProviderError(f"{provider}: the answer points at something that is not a URL: {exc}",
                                provider=provider) from exc
        except ProviderError as exc:
            if not exc.retryable:
                raise
            if not idempotent and exc.status not in NOT_RECEIVED_STATUSES:
                raise _uncertain(exc, provider) from exc
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
                         secrets: tuple[str, ...] = (), limits: Limits = Limits(), max_bytes: int | None = None,
                         idempotent: bool = True, **kwargs: Any) -> httpx.Response:
    """Send a request until it gets a 2xx; every try waits for `limiter` first. Returns the response.

    The answer is read whole within `max_bytes` (default `limits.max_json`); a redirect to
    another origin is refused (storyboard.providers._transfer.send). `idempotent=False` marks
    a paid create (see with_retries).
    """

    def attempt() -> httpx.Response:
        if limiter is not None:
            limiter.acquire(sleep)
        response = send(client, method, url, provider=provider, limit=max_bytes, limits=limits, **kwargs)
        raise_for_api_error(response, provider)
        return response

    return with_retries(attempt, provider=provider, sleep=sleep, rng=rng, policy=policy, secrets=secrets,
                        idempotent=idempotent)


def response_json(response: httpx.Response, provider: str) -> dict[str, Any]:
    """The JSON object in a 2xx response, or ProviderError if it is something else (or nested too deep)."""
    try:
        body = decode_json(response.content)
    except ValueError as exc:
        reason, body = str(exc), None
    else:
        reason = "without a JSON object"
    if not isinstance(body, dict):
        if reason.startswith("JSON nested"):
            raise ProviderError(f"{provider}: {_where(_request_of(response))} answered {reason}; storyboard does not "
                                "read such answers", provider=provider)
        raise ProviderError(f"{provider}: {_where(_request_of(response))} answered {response.status_code} "
                            f"without a JSON object: {response.text[:200]!r}", provider=provider)
    return body


def download(client: httpx.Client, url: str, dest: Path, *, provider: str, sleep: Callable[[float], None],
             headers: Mapping[str, str] | None = None, trusted: Callable[[httpx.URL], bool] | None = None,
             progress: Callable[[float | None], None] | None = None, rng: random.Random | None = None,
             policy: RetryPolicy = RetryPolicy(), max_redirects: int = 5,
             secrets: tuple[str, ...] = (), max_bytes: int | None = None, limits: Limits = Limits()) -> None:
    """Stream `url` into `dest` (following redirects) and check it arrived whole and is an MP4.

    `headers` (credentials) go only to hosts `trusted` accepts (default: `url`'s origin), never
    to another host a redirect points at. A short body is retried; one over `max_bytes`
    (default: a minute of video at `limits`' bitrate) or slower than `limits.min_rate` fails at
    once. On any failure `dest` is removed, so nothing partial is left to adopt.
    """
    cap = max_bytes if max_bytes is not None else limits.video_bytes(60)
    first = _video_url(url, provider)

    def same_origin(target: httpx.URL) -> bool:
        return (target.scheme, target.host, target.port) == (first.scheme, first.host, first.port)

    allowed = trusted or same_origin

    def attempt() -> None:
        target = first
        for _ in range(max_redirects + 1):
            send = dict(headers or {}) if allowed(target) else None
            with client.stream("GET", target, headers=send, follow_redirects=False) as response:
                if response.is_redirect and "Location" in response.headers:
                    target = _video_url(response.headers["Location"], provider, target)
                    continue
                raise_for_api_error(response, provider)
                _stream_to(response, dest, provider, progress, cap, limits)
                return
        raise ProviderError(f"{provider}: more than {max_redirects} redirects downloading the video",
                            provider=provider)

    try:
        with_retries(attempt, provider=provider, sleep=sleep, rng=rng, policy=policy, secrets=secrets)
        check_mp4(dest, provider)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _video_url(url: Any, provider: str, base: httpx.URL | None = None) -> httpx.URL:
    """The URL an API named for the video (joined to `base` for a redirect); ProviderError if it is none."""
    import httpx

    try:
        return base.join(url) if base is not None else httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        shown = url[:100] + ("…" if len(url) > 100 else "") if isinstance(url, str) else type(url).__name__
        raise ProviderError(f"{provider}: the video's URL {shown!r} is not a URL ({exc})", provider=provider) from None


def _stream_to(response: httpx.Response, dest: Path, provider: str,
               progress: Callable[[float | None], None] | None, cap: int, limits: Limits) -> None:
    length = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
    expected = int(length) if length.isdigit() and not encoded else None
    received, shown = 0, -1.0
    chunks = capped_chunks(response, cap, limits, provider, "the video download", "STORYBOARD_MAX_VIDEO_BYTES")
    with open(dest, "wb") as fh:
        for chunk in chunks:
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


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
