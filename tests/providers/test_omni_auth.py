"""Omni on Agent Platform authenticates as the vertex provider does: ADC refreshed before expiry, VERTEX_ACCESS_TOKEN
as an override, `x-goog-user-project` only when named, `locations/global` on the global host.

Tokens come from fake credentials on a fake clock (tests.providers.test_vertex_auth): nothing leaves the machine.
"""

from __future__ import annotations

import random

import pytest

from storyboard.errors import MissingKeyError
from storyboard.job import RenderJob
from storyboard.providers.omni import OmniProvider, OmniSettings
from tests.fakes import render_context
from tests.fakes.interactions_server import FakeInteractions
from tests.providers.test_vertex_auth import HOUR, NO_ADC, Clock, FakeCredentials

PROJECT = "films"


@pytest.fixture(scope="module")
def server():
    with FakeInteractions(token="ya29.omni-override-token") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeInteractions) -> FakeInteractions:
    server.reset()
    server.polls = 0
    return server


def omni(fake: FakeInteractions, env: dict[str, str], **kwargs) -> OmniProvider:
    settings = {"platform": "vertex", "base_url": fake.url, "poll_interval": 0.01, **kwargs.pop("settings", {})}
    return OmniProvider(OmniSettings(**settings), env=env, rng=random.Random(0), **kwargs)


def job(prompt: str = "a lighthouse at dusk") -> RenderJob:
    return RenderJob(provider="omni", model="gemini-omni-1.2-flash", prompt=prompt, duration=3, resolution="360p")


def render(provider: OmniProvider, tmp_path, name: str) -> None:
    try:
        provider.render(job(name), tmp_path / f"{name}.mp4", render_context(tmp_path, journal=name))
    finally:
        provider.close()


def test_adc_tokens_are_refreshed_before_they_expire_between_two_shots(fake, tmp_path):
    clock = Clock()
    credentials = FakeCredentials(clock, fake.issue)
    provider = omni(fake, {"GOOGLE_CLOUD_PROJECT": PROJECT, **NO_ADC}, credentials=credentials, clock=clock)
    try:
        provider.render(job("one"), tmp_path / "one.mp4", render_context(tmp_path, journal="one"))
        first = fake.issued[0]
        clock.now += HOUR - 60  # a minute before the hour is up: inside the refresh margin
        fake.expire(first)
        provider.render(job("two"), tmp_path / "two.mp4", render_context(tmp_path, journal="two"))
    finally:
        provider.close()

    assert credentials.refreshes == 2 and fake.issued == [first, "fake-adc-token-2"]
    sent = [r.headers.get("authorization") for r in fake.seen]
    assert sent == [f"Bearer {first}"] * 2 + ["Bearer fake-adc-token-2"] * 2  # create + poll, per shot
    assert all(r.path.startswith(f"/v1beta1/projects/{PROJECT}/locations/global/interactions") for r in fake.seen)
    assert "x-goog-user-project" not in fake.seen[0].headers and "x-goog-api-key" not in fake.seen[0].headers
    assert first in provider.secrets() and "fake-adc-token-2" in provider.secrets()  # scrubbed from messages


@pytest.mark.parametrize("setting, credentials_quota, sent", [
    (None, None, None), (None, "billing", "billing"), ("mine", "billing", "mine")])
def test_x_goog_user_project_only_when_a_quota_project_is_named(fake, tmp_path, setting, credentials_quota, sent):
    credentials = FakeCredentials(Clock(), fake.issue, quota_project_id=credentials_quota)
    provider = omni(fake, {"GOOGLE_CLOUD_PROJECT": PROJECT, **NO_ADC}, credentials=credentials,
                    settings={"quota_project": setting} if setting else {})
    render(provider, tmp_path, "quota")
    assert fake.seen[0].headers.get("x-goog-user-project") == sent


def test_the_access_token_variable_overrides_adc(fake, tmp_path):
    credentials = FakeCredentials(Clock(), fake.issue)
    provider = omni(fake, {"VERTEX_ACCESS_TOKEN": fake.token, "GOOGLE_CLOUD_PROJECT": PROJECT}, credentials=credentials)
    render(provider, tmp_path, "override")
    assert credentials.refreshes == 0
    assert {r.headers.get("authorization") for r in fake.seen} == {f"Bearer {fake.token}"}


def test_the_project_may_come_from_the_credentials_and_the_host_is_always_the_global_one(fake, tmp_path,
                                                                                         monkeypatch):
    from storyboard.providers import _cloud

    credentials = FakeCredentials(Clock(), fake.issue)
    monkeypatch.setattr("storyboard.providers._google_auth.find_credentials",
                        lambda env, request=None, provider="vertex": (credentials, "adc-project"))
    env = {"GOOGLE_CLOUD_LOCATION": "europe-west4", **NO_ADC}
    provider = OmniProvider(OmniSettings(platform="vertex"), env=env)
    assert provider.interactions_url() == ("https://aiplatform.googleapis.com/v1beta1/projects/adc-project/"
                                           "locations/global/interactions")
    assert isinstance(provider, _cloud.CloudCredentials)


def test_no_credentials_stop_before_anything_is_sent_and_say_how_to_give_them(fake, tmp_path):
    provider = omni(fake, {"GOOGLE_CLOUD_PROJECT": PROJECT, "HOME": str(tmp_path), **NO_ADC})
    with pytest.raises(MissingKeyError, match="omni found no Google Cloud credentials.*gcloud auth "
                                              "application-default login.*VERTEX_ACCESS_TOKEN"):
        provider.check_key()
    with pytest.raises(MissingKeyError):
        render(provider, tmp_path, "none")
    assert fake.total() == 0
    with pytest.raises(MissingKeyError, match=r"omni needs a Google Cloud project.*\[providers\.omni\]"):
        omni(fake, {"VERTEX_ACCESS_TOKEN": "t"}).check_key()
