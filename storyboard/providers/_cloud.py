"""Google Cloud credentials for a provider: VERTEX_ACCESS_TOKEN, else Application Default Credentials.

Vertex and Omni on Agent Platform both authenticate this way; google-auth is imported only when a
token is first needed (storyboard.providers._google_auth), so other providers never load it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from storyboard.errors import MissingKeyError

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

    from storyboard.providers._google_auth import TokenSource


class CloudCredentials:
    """Google Cloud credentials for a provider (Vertex; Omni on Agent Platform), mixed in before its base.

    VERTEX_ACCESS_TOKEN if set (used as is), else Application Default Credentials through a
    TokenSource found on first use. The host class has `name`, `env` and `settings`.

    Args (added to the provider's constructor):
        credentials: google-auth credentials to use instead of looking for ADC (tests).
        clock: seconds since the epoch, against which token expiry is judged (tests).
    """

    name: str
    env: Mapping[str, str]
    settings: Any

    def __init__(self, *args: Any, credentials: Credentials | None = None, clock: Callable[[], float] = time.time,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._credentials = credentials
        self._clock = clock
        self._tokens: TokenSource | None = None
        self._adc_project: str | None = None
        self._missing: str | None = None
        self._tokens_lock = threading.Lock()

    def token_override(self) -> str:
        return self.env.get("VERTEX_ACCESS_TOKEN", "").strip()

    def token_source(self) -> TokenSource:
        """The ADC TokenSource, built on first use (MissingKeyError when no credentials are found)."""
        from storyboard.providers._google_auth import TokenSource, find_credentials  # google-auth: when used

        with self._tokens_lock:
            if self._tokens is None:
                if self._missing is not None:  # looked once (maybe pinging the metadata server): say it again
                    raise MissingKeyError(self._missing)
                try:
                    credentials, project = (self._credentials, None) if self._credentials is not None \
                        else find_credentials(self.env, provider=self.name)
                except MissingKeyError as exc:
                    self._missing = exc.message
                    raise
                self._tokens = TokenSource(credentials, clock=self._clock, provider=self.name)
                self._adc_project = project
            return self._tokens

    def cloud_token(self) -> str:
        """VERTEX_ACCESS_TOKEN, else a token from Application Default Credentials (fresh for 5 minutes)."""
        return self.token_override() or self.token_source().token()

    def cloud_project(self) -> str:
        """The table's `project`, GOOGLE_CLOUD_PROJECT, else the one the credentials name."""
        project = getattr(self.settings, "project", None) or self.env.get("GOOGLE_CLOUD_PROJECT", "").strip()
        if not project and not self.token_override():
            try:
                self.token_source()
            except MissingKeyError:
                pass
            project = self._adc_project or ""
        if not project:
            raise MissingKeyError(f"{self.name} needs a Google Cloud project: set GOOGLE_CLOUD_PROJECT or "
                                  f"`project` in [providers.{self.name}]")
        return project

    def check_cloud_credentials(self) -> None:
        """Credentials found (no token fetched yet) and a project known; MissingKeyError otherwise."""
        if not self.token_override():
            self.token_source()
        self.cloud_project()

    def cloud_quota_project(self) -> str | None:
        """`quota_project`, GOOGLE_CLOUD_QUOTA_PROJECT, else the credentials' quota project, else none."""
        chosen = getattr(self.settings, "quota_project", None) or self.env.get("GOOGLE_CLOUD_QUOTA_PROJECT", "")
        if not chosen and not self.token_override():
            chosen = self.token_source().quota_project
        return chosen or None

    def cloud_headers(self) -> dict[str, str]:
        """`Authorization: Bearer`, and `x-goog-user-project` only when a quota project is named."""
        headers = {"Authorization": f"Bearer {self.cloud_token()}"}
        if quota := self.cloud_quota_project():
            headers["x-goog-user-project"] = quota
        return headers

    def cloud_secrets(self) -> tuple[str, ...]:
        """The override and every token issued, to scrub from messages."""
        override = self.token_override()
        return ((override,) if override else ()) + (self._tokens.issued if self._tokens is not None else ())
