"""Vertex credentials: Application Default Credentials, refreshed before expiry, never shown.

Tokens come from fake credentials (with a fake clock) or from a service-account file whose
`token_uri` is the loopback fake's /token: nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import google.auth.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import credentials as ga_credentials
from google.oauth2 import service_account

from storyboard.errors import MissingKeyError, ProviderError
from storyboard.job import RenderJob
from storyboard.media import probe
from storyboard.providers import _google_auth
from storyboard.providers._google_auth import NO_CREDENTIALS, REFRESH_MARGIN, TokenSource, find_credentials
from storyboard.providers.vertex import VertexProvider, VertexSettings
from tests.fakes import render_context
from tests.fakes.google_server import FakeGoogle, google_fake, google_server  # noqa: F401

HOUR = 3600.0
NO_ADC = {"NO_GCE_CHECK": "true"}


class Clock:
    """Seconds since the epoch that move only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeCredentials(ga_credentials.Credentials):
    """Credentials whose refresh mints a token valid `lifetime` seconds on `clock` (from `mint`)."""

    def __init__(self, clock: Clock, mint=None, *, lifetime: float = HOUR, quota_project_id: str | None = None,
                 delay: float = 0.0, fail: Exception | None = None) -> None:
        super().__init__()
        self.clock, self.lifetime, self.delay, self.fail = clock, lifetime, delay, fail
        self.mint = mint or (lambda: f"token-{self.refreshes}")
        self._quota_project_id = quota_project_id
        self.refreshes = 0

    def refresh(self, request) -> None:
        if self.fail is not None:
            raise self.fail
        time.sleep(self.delay)
        self.refreshes += 1
        self.token = self.mint()
        self.expiry = datetime.fromtimestamp(self.clock() + self.lifetime, timezone.utc).replace(tzinfo=None)


def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def pem() -> str:
    return private_key_pem()


def service_account_file(folder: Path, fake: FakeGoogle, pem: str) -> Path:
    """A service-account key file whose token endpoint is the fake's /token."""
    path = folder / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": fake.project, "private_key_id": "k1", "private_key": pem,
        "client_email": "films@fake-project.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": f"{fake.url}/token"}))
    return path


def job(prompt: str = "A lighthouse at dusk") -> RenderJob:
    return RenderJob(provider="vertex", model="veo-3.1-generate-001", prompt=prompt, duration=4)


def vertex(fake: FakeGoogle, env: dict[str, str], **kwargs) -> VertexProvider:
    settings = VertexSettings(base_url=fake.url, poll_interval=0.01, **kwargs.pop("settings", {}))
    return VertexProvider(settings, env=env, rng=random.Random(0), **kwargs)


# ---- TokenSource --------------------------------------------------------------------------------


def test_a_token_is_fetched_once_and_refreshed_five_minutes_before_it_expires():
    clock = Clock()
    source = TokenSource(FakeCredentials(clock), clock=clock)
    assert source.token() == "token-1"
    clock.now += HOUR - REFRESH_MARGIN - 1  # 5 min and 1 s left: still good
    assert source.token() == "token-1" and source.refreshes == 1
    clock.now += 2  # 4 min 59 s left: replaced before it can die in flight
    assert source.token() == "token-2" and source.refreshes == 2
    assert source.issued == ("token-1", "token-2")


def test_concurrent_callers_share_one_refresh():
    clock = Clock()
    credentials = FakeCredentials(clock, delay=0.05)
    source = TokenSource(credentials, clock=clock)
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(source.token())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tokens == ["token-1"] * 8 and credentials.refreshes == 1


def test_a_refused_refresh_is_a_clear_final_error_and_a_network_fault_is_retryable():
    clock = Clock()
    refused = TokenSource(FakeCredentials(clock, fail=google.auth.exceptions.RefreshError(
        "invalid_grant: Invalid JWT Signature.")), clock=clock)
    with pytest.raises(ProviderError, match="refused to refresh .*Invalid JWT Signature.*GOOGLE_APPLICATION") as info:
        refused.token()
    assert not info.value.retryable
    unreachable = TokenSource(FakeCredentials(clock, fail=google.auth.exceptions.TransportError("reset")),
                              clock=clock)
    with pytest.raises(ProviderError, match="could not reach") as info:
        unreachable.token()
    assert info.value.retryable


# ---- finding credentials ------------------------------------------------------------------------


def test_a_service_account_file_is_found_through_the_variable(tmp_path, google_fake, pem):
    path = service_account_file(tmp_path, google_fake, pem)
    credentials, project = find_credentials({"GOOGLE_APPLICATION_CREDENTIALS": str(path), **NO_ADC})
    assert isinstance(credentials, service_account.Credentials) and project == google_fake.project
    assert credentials.service_account_email == "films@fake-project.iam.gserviceaccount.com"


def test_gclouds_application_default_file_is_found_with_its_quota_project(tmp_path):
    (tmp_path / "application_default_credentials.json").write_text(json.dumps({
        "type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r",
        "quota_project_id": "billing-project"}))
    credentials, _ = find_credentials({"CLOUDSDK_CONFIG": str(tmp_path), **NO_ADC})
    assert TokenSource(credentials).quota_project == "billing-project"


def test_the_metadata_server_is_the_last_resort(tmp_path, monkeypatch):
    from google.auth import compute_engine

    asked = []
    monkeypatch.setattr(_google_auth, "_on_google_cloud", lambda request: asked.append(request) or True)
    credentials, project = find_credentials({"HOME": str(tmp_path)})
    assert isinstance(credentials, compute_engine.Credentials) and project is None and len(asked) == 1
    asked.clear()
    with pytest.raises(MissingKeyError):
        find_credentials({"HOME": str(tmp_path), **NO_ADC})
    assert asked == []  # NO_GCE_CHECK: no ping


@pytest.mark.parametrize("env, message", [
    ({"HOME": "{tmp}"}, "gcloud auth application-default login"),
    ({"GOOGLE_APPLICATION_CREDENTIALS": "{tmp}/missing.json"}, "GOOGLE_APPLICATION_CREDENTIALS names .*not a file"),
    ({"GOOGLE_APPLICATION_CREDENTIALS": "{tmp}/broken.json"}, r"cannot use the credentials in .*broken\.json"),
])
def test_missing_or_broken_credentials_say_what_to_do(tmp_path, env, message):
    (tmp_path / "broken.json").write_text("{not json")
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()} | NO_ADC
    with pytest.raises(MissingKeyError, match=message):
        find_credentials(env)
    provider = VertexProvider(VertexSettings(project="p"), env=env)
    with pytest.raises(MissingKeyError, match=message):
        provider.check_key()


def test_no_credentials_message_names_every_way():
    for way in ("gcloud auth application-default login", "GOOGLE_APPLICATION_CREDENTIALS", "metadata server",
                "VERTEX_ACCESS_TOKEN"):
        assert way in NO_CREDENTIALS


# ---- the provider -------------------------------------------------------------------------------


def test_a_token_expiring_between_two_shots_is_refreshed_once_and_both_succeed(google_fake, tmp_path):
    clock = Clock()
    credentials = FakeCredentials(clock, google_fake.issue)
    provider = vertex(google_fake, {"GOOGLE_CLOUD_PROJECT": google_fake.project}, credentials=credentials,
                      clock=clock)
    try:
        provider.render(job("first shot"), tmp_path / "a.mp4", render_context(tmp_path, journal="a"))
        first = google_fake.issued_tokens[0]
        clock.now += HOUR - 60  # the second shot starts a minute before the token's hour is up
        google_fake.expire(first)  # and Google would refuse it by the time its requests arrive
        provider.render(job("second shot"), tmp_path / "b.mp4", render_context(tmp_path, journal="b"))
    finally:
        provider.close()
    assert credentials.refreshes == 2 and google_fake.issued_tokens == [first, "fake-sa-token-2"]
    auth = [h["authorization"] for h in google_fake.request_headers("submit")]
    assert auth == [f"Bearer {first}", "Bearer fake-sa-token-2"]
    assert probe(tmp_path / "a.mp4").duration == 4.0 and probe(tmp_path / "b.mp4").duration == 4.0


@pytest.mark.parametrize("quota_setting, credentials_quota, expected", [
    (None, None, None),
    ("table-quota", None, "table-quota"),
    (None, "adc-quota", "adc-quota"),
    ("table-quota", "adc-quota", "table-quota"),
])
def test_x_goog_user_project_only_when_a_quota_project_is_named(google_fake, tmp_path, quota_setting,
                                                                  credentials_quota, expected):
    clock = Clock()
    credentials = FakeCredentials(clock, google_fake.issue, quota_project_id=credentials_quota)
    settings = {"quota_project": quota_setting} if quota_setting else {}
    provider = vertex(google_fake, {"GOOGLE_CLOUD_PROJECT": google_fake.project}, credentials=credentials,
                      clock=clock, settings=settings)
    try:
        provider.render(job(), tmp_path / "a.mp4", render_context(tmp_path))
    finally:
        provider.close()
    for endpoint in ("submit", "poll"):
        for headers in google_fake.request_headers(endpoint):
            assert headers.get("x-goog-user-project") == expected


def test_the_access_token_variable_overrides_adc(google_fake, tmp_path):
    credentials = FakeCredentials(Clock(), google_fake.issue)
    env = {"VERTEX_ACCESS_TOKEN": google_fake.token, "GOOGLE_CLOUD_PROJECT": google_fake.project}
    provider = vertex(google_fake, env, credentials=credentials)
    try:
        provider.render(job(), tmp_path / "a.mp4", render_context(tmp_path))
    finally:
        provider.close()
    assert credentials.refreshes == 0
    assert {h["authorization"] for h in google_fake.request_headers("submit")} == {f"Bearer {google_fake.token}"}
    assert "x-goog-user-project" not in google_fake.request_headers("submit")[0]


def test_a_service_account_file_renders_against_the_loopback_token_endpoint(google_fake, tmp_path, pem):
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(service_account_file(tmp_path, google_fake, pem)), **NO_ADC}
    provider = vertex(google_fake, env)
    try:
        provider.check_key()
        assert google_fake.count("token") == 0  # finding credentials fetches no token
        assert provider.project == google_fake.project  # from the key file
        provider.render(job(), tmp_path / "a.mp4", render_context(tmp_path, journal="a"))
        provider.render(job("again"), tmp_path / "b.mp4", render_context(tmp_path, journal="b"))
    finally:
        provider.close()
    [claims] = google_fake.assertions
    assert claims["iss"] == "films@fake-project.iam.gserviceaccount.com"
    assert claims["aud"] == "https://oauth2.googleapis.com/token"  # what google-auth signs for; sent to loopback
    assert "https://www.googleapis.com/auth/cloud-platform" in claims["scope"].split()
    assert google_fake.count("token") == 1 and "fake-sa-token-1" in provider.secrets()


# ---- a whole build ------------------------------------------------------------------------------

BOARD = """
[film]
output = "out/film.mp4"
provider = "vertex"
duration = 4

[providers.vertex]
poll_interval = 0.01
person_generation = "dont_allow"

[[shot]]
id = "harbour"
prompt = "a fishing boat leaves the harbour at dawn"

[[shot]]
id = "sea"
prompt = "the boat reaches the open sea"
"""


def build_env(fake: FakeGoogle, **extra: str) -> dict[str, str]:
    """A `storyboard` process's environment with no Google credentials but those given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYBOARD_", "GOOGLE_", "VERTEX_",
                                                                      "CLOUDSDK_"))}
    return {**env, "STORYBOARD_VERTEX_BASE_URL": fake.url, **NO_ADC, **extra}


def storyboard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storyboard", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=180)


def test_a_build_with_a_service_account_file(google_fake, tmp_path, pem):
    board = tmp_path / "film" / "storyboard.toml"
    board.parent.mkdir()
    board.write_text(BOARD)
    key_file = service_account_file(tmp_path, google_fake, pem)
    env = build_env(google_fake, GOOGLE_APPLICATION_CREDENTIALS=str(key_file), HOME=str(tmp_path))
    result = storyboard("build", str(board), "--yes", env=env)

    assert result.returncode == 0, result.stderr
    assert "summary: 2 rendered" in result.stdout
    assert probe(board.parent / "out" / "film.mp4").duration == pytest.approx(8.0, abs=0.1)
    assert google_fake.count("token") == 1 and google_fake.count("submit") == 2
    [token] = google_fake.issued_tokens
    assert {h["authorization"] for h in google_fake.request_headers("submit")} == {f"Bearer {token}"}
    assert all("x-goog-user-project" not in h for h in google_fake.request_headers("submit"))
    assert {b["parameters"]["personGeneration"] for b in google_fake.bodies("submit")} == {"dont_allow"}
    assert token not in result.stdout + result.stderr
    for path in board.parent.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_a_build_without_credentials_stops_before_anything_runs(google_fake, tmp_path):
    board = tmp_path / "storyboard.toml"
    board.write_text(BOARD)
    env = build_env(google_fake, HOME=str(tmp_path), GOOGLE_CLOUD_PROJECT=google_fake.project)
    result = storyboard("build", str(board), "--yes", env=env)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "gcloud auth application-default login" in result.stderr
    assert "Traceback" not in result.stderr and "nothing was run" in result.stderr
    assert google_fake.count("submit") == 0 and google_fake.count("token") == 0
