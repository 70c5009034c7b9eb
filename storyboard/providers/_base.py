"""HttpProvider: the base the Google and gateway providers share.

It owns the settings, one lazily built `httpx.Client` and one `RateLimiter` per instance (a
build makes one instance per provider and shares it between its threads), and `render()`'s
skeleton:

    journal holds an operation? ── yes ──> poll it ── 404 (gone) ──> submit anew
               │ no                           │
               └──> submit ──> journal it ───>┴──> poll until finished ──> outcome() ──> fetch()

A create whose answer is lost after it left (storyboard.providers._http.UncertainSubmit) may have
started a billed job that no id points to: it is journaled `uncertain` and the shot fails, and
the executor refuses to send it again until `storyboard build --resubmit SHOT`. A 404 saying a
model "is no longer available" becomes storyboard.lifecycle's shutdown message.

Subclasses fill in `submit`, `poll`, `outcome` and `fetch`. Credentials never enter an error
message, a log line or the journal: every ProviderError leaving `render` is scrubbed of them.
They go only to the hosts storyboard.providers._hosts allows (checked again before a render).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.errors import MissingKeyError, ProviderError, StoryboardError
from storyboard.job import Price, RenderContext, RenderJob, RenderResult
from storyboard.providers import ProviderSettings
from storyboard.providers._hosts import Destination, allowed_hosts, refusal
from storyboard.providers._http import RetryPolicy, UncertainSubmit, download, redact, request_with_retries, utc_iso
from storyboard.providers._ratelimit import RateLimiter
from storyboard.providers._transfer import Limits

if TYPE_CHECKING:
    import httpx  # imported when a request is made: loading or planning a board never needs it

log = logging.getLogger("storyboard.providers._http")
_CREATING = threading.local()
"""Set while this thread runs a provider's `submit`: its POSTs are paid creates (not retried blindly)."""
CONSOLES = {"gemini": "https://aistudio.google.com/usage",
            "vertex": "the Google Cloud console (Vertex AI, and Billing > Reports for the project)",
            "omni": "https://aistudio.google.com/usage (or, with platform = \"vertex\", the Google Cloud console's "
                    "Billing > Reports)"}


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
    official_hosts: tuple[str, ...] = ()
    """The service's own API hosts (`*` is one DNS label): the only ones a storyboard may name
    in `base_url`, besides loopback (storyboard.providers._hosts)."""
    policy = RetryPolicy()
    idempotent_create = False
    """True when the create carries an idempotency key, so a lost answer may be retried safely."""

    def __init__(self, settings: ProviderSettings | None = None, *, client: httpx.Client | None = None,
                 env: Mapping[str, str] = os.environ, rng: random.Random | None = None) -> None:
        self.settings = settings if settings is not None else self.Settings()
        self.env = env
        self.rng = rng or random.Random()
        self._client = client
        self._client_lock = threading.Lock()
        self.limiter = RateLimiter(self.settings.rpm if self.settings.rpm is not None else self.default_rpm)
        self.limits = Limits.from_env(env)

    # ---- configuration ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """STORYBOARD_<NAME>_BASE_URL, else the table's `base_url`, else the real service."""
        env = self.env.get(f"STORYBOARD_{self.name.upper()}_BASE_URL")
        return (env or self.settings.base_url or self.default_base_url).rstrip("/")

    def destinations(self) -> list[Destination]:
        """Every URL the key is sent to, with the setting that chose it (checked by _hosts)."""
        env = self.env.get(f"STORYBOARD_{self.name.upper()}_BASE_URL")
        source = "env" if env else "board" if self.settings.base_url else "default"
        return [Destination("base_url", self.base_url, source, self.official_hosts)]

    def key_hosts(self) -> list[str]:
        """The hosts the key goes to, for `storyboard plan`; one not the service's own says whose choice it is."""
        return list(dict.fromkeys(d.where + d.note for d in self.destinations()))

    def check_destinations(self) -> None:
        """ProviderError unless every key destination is official, loopback or allowed by the user.

        Validation refuses such a storyboard first (storyboard.rules); this guards a provider
        built some other way before its key goes anywhere.
        """
        allowed = allowed_hosts(self.env)
        for dest in self.destinations():
            if (why := refusal(dest, self.name, allowed)) is not None:
                raise ProviderError(f"{self.name}: [providers.{self.name}] {dest.field}: {why}", provider=self.name)

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
        import httpx

        with self._client_lock:
            if self._client is None:
                timeout = httpx.Timeout(self.settings.timeout or self.default_timeout, connect=10.0)
                # redirects are followed by hand: API calls only on their origin, downloads without keys
                self._client = httpx.Client(timeout=timeout, follow_redirects=False,
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
        import httpx

        base = httpx.URL(self.base_url)
        if (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port):
            return True
        return bool(self.trusted_suffixes) and url.scheme == "https" and url.host.endswith(self.trusted_suffixes)

    def request(self, method: str, url: str, ctx: RenderContext, *, limited: bool = False,
                max_bytes: int | None = None, **kwargs: Any) -> httpx.Response:
        """One API call with retries; `limited` calls count against the requests-per-minute limit.

        The answer may weigh `max_bytes` (default `limits.max_json`; see `inline_limit`).
        """
        create = method == "POST" and getattr(_CREATING, "on", False) and not self.idempotent_create
        if create:
            _CREATING.answered = False
        response = request_with_retries(self.client, method, url, provider=self.name, sleep=ctx.sleep,
                                        limiter=self.limiter if limited else None, rng=self.rng,
                                        policy=self.policy, secrets=self.secrets(), limits=self.limits,
                                        max_bytes=max_bytes, idempotent=not create, **kwargs)
        if create:
            _CREATING.answered = True  # a failure from here on (an answer without an id) is uncertain too
        return response

    def clip_seconds(self, job: RenderJob | None) -> float:
        """The longest the clip of `job` can be: its duration, or the provider's limit for an extension."""
        if job is None:
            return 60.0
        return float(self.capabilities(job.model).max_extended_seconds if job.extends else job.duration)

    def inline_limit(self, job: RenderJob | None) -> int:
        """The most an answer that may carry the video inline (base64) may weigh."""
        return self.limits.inline_video_json(self.clip_seconds(job))

    def download(self, url: str, dest: Path, ctx: RenderContext, headers: Mapping[str, str],
                 job: RenderJob | None = None) -> None:
        """Stream a result to `dest` with retries, reporting 'downloading' progress.

        At most the bytes `job`'s clip can need (Limits.video_bytes), at a minimum pace.
        """
        ctx.progress("downloading", 0.0)
        download(self.client, url, dest, provider=self.name, sleep=ctx.sleep, headers=headers,
                 trusted=self.trusts, progress=lambda f: ctx.progress("downloading", f), rng=self.rng,
                 policy=self.policy, secrets=self.secrets(), limits=self.limits,
                 max_bytes=self.limits.video_bytes(self.clip_seconds(job)))

    # ---- the render skeleton ----------------------------------------------------------------

    def render(self, job: RenderJob, dest: Path, ctx: RenderContext) -> RenderResult:
        """Submit (or resume), poll, download to `dest`; see the module docstring for the flow.

        Raises:
            MissingKeyError: the credentials are not set.
            ProviderError: the API refused or failed the job (its message quoted), or a
                transient fault outlasted the retries (`retryable=True`).
        """
        with self._public_errors(ctx, job):
            self.check_destinations()
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

    max_samples = 1
    """Videos one request can return (Vertex `sampleCount`, Azerion `n`): a shot's takes go in batches of this."""

    def render_batch(self, job: RenderJob, dests: list[Path], ctx: RenderContext) -> list[RenderResult]:
        """One request for `ctx.samples` videos of `job` (a shot's candidates), written to `dests` in order.

        Returns one result per video that came back, which may be fewer than asked (the executor keeps
        those, paid for, and fails the shot for the rest).
        """
        with self._public_errors(ctx, job):
            self.check_destinations()
            self.check_key()
            operation, finished = self.wait_for(job, ctx)
            try:
                outputs = self.outcomes(finished)
            except ProviderError:
                ctx.journal.clear()
                raise
            results = []
            for output, dest in zip(outputs, dests):
                try:
                    handle = self.fetch(output, job, dest, ctx)
                except ProviderError as exc:
                    if exc.status == 404:
                        ctx.journal.clear()
                    raise
                results.append(RenderResult(cost=self.price(job), operation=operation, handle=handle))
            return results

    def outcomes(self, finished: Any) -> list[Any]:
        """Every video a finished operation holds; a provider that returns several overrides it."""
        return [self.outcome(finished)]

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
        _CREATING.on, _CREATING.answered = True, False
        try:
            operation = self.submit(job, ctx)
        except ProviderError as exc:
            if not (isinstance(exc, UncertainSubmit) or _CREATING.answered):
                raise
            sent = utc_iso()
            ctx.journal.write({"uncertain": True, "provider": self.name, "model": job.model, "sent": sent})
            raise ProviderError(f"{exc.message.rstrip('.')}. The create request (sent {sent}) left for {self.name} "
                                "and no job id came back: the job may have started and been charged. Check "
                                f"{self.console()} before building this shot again; storyboard will not send "
                                f"it again until you run `storyboard build --resubmit {ctx.shot_id}`",
                                provider=self.name, status=exc.status) from exc
        finally:
            _CREATING.on = False
        ctx.journal.write({"operation": operation, "provider": self.name, "model": job.model,
                           "submitted": utc_iso(), **({"candidates": list(ctx.candidates)} if ctx.candidates else {})})
        ctx.progress("submitted", None)
        return operation

    def console(self) -> str:
        """Where the user sees the jobs they paid for (named when a create's answer was lost)."""
        return CONSOLES.get(self.name, f"your {self.name} account's dashboard (jobs and billing)")

    @contextmanager
    def _public_errors(self, ctx: RenderContext, job: RenderJob) -> Iterator[None]:
        """Name the shot in a ProviderError and scrub credentials from it and its causes.

        A 404 saying the model "is no longer available" becomes the lifecycle message.
        """
        from storyboard.lifecycle import gone, retired_message

        try:
            yield
        except ProviderError as exc:
            if gone(exc.status, exc.message):
                _set_message(exc, f"{retired_message(self.name, job.model)} (HTTP 404: the model is no longer "
                                  "available)")
            _scrub(exc, self.secrets())
            message = exc.message if exc.message.startswith("shot '") else f"shot '{ctx.shot_id}': {exc.message}"
            _set_message(exc, printable(message))
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

    def capabilities(self, model: str) -> Any:
        raise NotImplementedError


MAX_MESSAGE = 1000
"""Characters a provider's error keeps: a server's words quoted in it (a status, a reason) are its to size."""


def printable(text: str) -> str:
    """`text` on one line with no control characters and at most about MAX_MESSAGE characters: a
    server's words must not drive the terminal, nor bury the one line a failure gets."""
    text = "".join(" " if c in "\t\n\r" else f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" else c
                   for c in text)
    if len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE - 200]} … ({len(text) - MAX_MESSAGE} characters left out) … {text[-200:]}"
    return text


def _set_message(exc: StoryboardError, message: str) -> None:
    exc.message = message
    exc.args = (message,)


def _scrub(exc: BaseException | None, secrets: tuple[str, ...]) -> None:
    """Mask every secret in the messages of `exc` and the StoryboardErrors it was chained from."""
    seen: set[int] = set()
    while isinstance(exc, StoryboardError) and id(exc) not in seen:
        seen.add(id(exc))
        if (message := redact(exc.message, secrets)) != exc.message:
            _set_message(exc, message)
        exc = exc.__cause__ or exc.__context__
