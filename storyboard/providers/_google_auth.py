"""Google Cloud access tokens for Vertex and Omni on Agent Platform: Application Default Credentials,
refreshed before expiry (storyboard.providers._cloud.CloudCredentials gives a provider all of it).

Where the credentials come from, first found wins (the order of google.auth.default()):

    VERTEX_ACCESS_TOKEN              a token you made (`gcloud auth print-access-token`), used as is
    GOOGLE_APPLICATION_CREDENTIALS   an ADC JSON file: a service account, workload identity...
    gcloud's ADC file                `gcloud auth application-default login` writes it, under
                                     CLOUDSDK_CONFIG or ~/.config/gcloud (%APPDATA%\\gcloud)
    the metadata server              on GCE, GKE and Cloud Run (not looked for when NO_GCE_CHECK=true)

The variables are read from the provider's `env` (not os.environ), so tests and a build see the
same lookup. Finding credentials reads files only (the metadata server answers a ping); the
first token is fetched when the first request needs it.

Tokens live an hour and a build may run longer, so `TokenSource.token()` refreshes when less
than REFRESH_MARGIN is left. It holds a lock while it refreshes: concurrent shots wait for one
refresh and share its token. google-auth talks to the token endpoint through `HttpxRequest`, so
no second HTTP library is needed.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import timezone
from pathlib import Path
from typing import Any

import google.auth
import google.auth.exceptions
import google.auth.transport
import httpx
from google.auth.credentials import Credentials

from storyboard.errors import MissingKeyError, ProviderError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
REFRESH_MARGIN = 5 * 60.0
"""Seconds before expiry at which a token is replaced: no request leaves with a dying token."""



def no_credentials(provider: str) -> str:
    return (f"{provider} found no Google Cloud credentials. Run `gcloud auth application-default login`, "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON file, or run on Google "
            "Cloud (the metadata server), or set VERTEX_ACCESS_TOKEN to an access token")


NO_CREDENTIALS = no_credentials("vertex")


class _Response(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(google.auth.transport.Request):
    """google-auth's transport interface over httpx (token endpoints, the metadata server)."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    def __call__(self, url: str, method: str = "GET", body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> _Response:
        try:
            with httpx.Client(timeout=timeout or self.timeout, follow_redirects=False) as client:
                return _Response(client.request(method, url, content=body, headers=dict(headers or {})))
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(f"{type(exc).__name__}: {exc}") from None


def _adc_file(env: Mapping[str, str]) -> Path:
    """Where `gcloud auth application-default login` writes its credentials."""
    if config := env.get("CLOUDSDK_CONFIG", "").strip():
        return Path(config) / "application_default_credentials.json"
    if os.name == "nt" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "gcloud" / "application_default_credentials.json"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".config" / "gcloud" / "application_default_credentials.json"


def _from_file(path: Path, origin: str, provider: str) -> tuple[Credentials, str | None]:
    """Any ADC file type. google-auth warns that a generic loader trusts the file's contents; this
    file is named by the user's own environment, never by a storyboard, which is the case ADC is
    for (google.auth.default() silences the same warning)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            credentials, project = google.auth.load_credentials_from_file(str(path), scopes=list(SCOPES))
    except google.auth.exceptions.GoogleAuthError as exc:
        raise MissingKeyError(f"{provider}: cannot use the credentials in {path} ({origin}): {exc}") from None
    return credentials, project


def _on_google_cloud(request: google.auth.transport.Request) -> bool:
    from google.auth.compute_engine import _metadata

    return bool(_metadata.is_on_gce(request))


def find_credentials(env: Mapping[str, str], request: google.auth.transport.Request | None = None,
                     provider: str = "vertex") -> tuple[Credentials, str | None]:
    """(credentials, their project if they name one) by the ADC order; MissingKeyError if none."""
    if path := env.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip():
        if not Path(path).is_file():
            raise MissingKeyError(f"{provider}: GOOGLE_APPLICATION_CREDENTIALS names {path}, which is not a file; "
                                  "point it at a service-account JSON key, or unset it")
        return _from_file(Path(path), "GOOGLE_APPLICATION_CREDENTIALS", provider)
    if (adc := _adc_file(env)).is_file():
        return _from_file(adc, "`gcloud auth application-default login`", provider)
    if env.get("NO_GCE_CHECK", "").strip().lower() not in ("1", "true", "yes"):
        if _on_google_cloud(request or HttpxRequest(timeout=3.0)):
            from google.auth import compute_engine

            return compute_engine.Credentials(), None
    raise MissingKeyError(no_credentials(provider))


class TokenSource:
    """Access tokens from one credentials object, refreshed `margin` seconds before they expire.

    Args:
        credentials: google-auth credentials (tests pass a fake one).
        clock: seconds since the epoch (tests pass a fake one to step past an expiry).
        request: google-auth's transport for the refresh.
        provider: who the tokens are for, to name in errors.
    """

    def __init__(self, credentials: Credentials, *, clock: Callable[[], float] = time.time,
                 margin: float = REFRESH_MARGIN, request: google.auth.transport.Request | None = None,
                 provider: str = "vertex") -> None:
        self.credentials = credentials
        self.provider = provider
        self.clock = clock
        self.margin = margin
        self.request = request or HttpxRequest()
        self.refreshes = 0
        self._issued: list[str] = []
        self._lock = threading.Lock()

    @property
    def quota_project(self) -> str | None:
        """The project the credentials bill quota to, if they name one (user credentials often do)."""
        return getattr(self.credentials, "quota_project_id", None) or None

    @property
    def issued(self) -> tuple[str, ...]:
        """Every token handed out so far, to scrub from messages."""
        with self._lock:
            return tuple(self._issued)

    def token(self) -> str:
        """A token valid for at least `margin` more seconds; refreshes (once, under the lock) if not."""
        with self._lock:
            if self._stale():
                self._refresh()
            return str(self.credentials.token)

    def _stale(self) -> bool:
        if not self.credentials.token:
            return True
        expiry = self.credentials.expiry  # naive UTC, or None for a token that does not expire
        if expiry is None:
            return False
        return expiry.replace(tzinfo=timezone.utc).timestamp() - self.clock() < self.margin

    def _refresh(self) -> None:
        try:
            self.credentials.refresh(self.request)
        except google.auth.exceptions.TransportError as exc:
            raise ProviderError(f"{self.provider}: could not reach Google's token service to refresh the access "
                                f"token: {exc}", provider=self.provider, retryable=True) from None
        except google.auth.exceptions.GoogleAuthError as exc:
            raise ProviderError(f"{self.provider}: Google refused to refresh the access token: {exc}. Check the "
                                "credentials (`gcloud auth application-default login`, or the service "
                                "account key in GOOGLE_APPLICATION_CREDENTIALS)", provider=self.provider) from None
        if not self.credentials.token:
            raise ProviderError(f"{self.provider}: the credentials refreshed without a token", provider=self.provider)
        self.refreshes += 1
        self._issued.append(str(self.credentials.token))

