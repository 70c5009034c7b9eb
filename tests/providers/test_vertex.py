import hashlib
import random
import stat

import pytest

from storyboard.errors import MissingKeyError, ProviderError
from storyboard.job import RenderJob
from storyboard.media import probe
from storyboard.providers.vertex import VertexProvider, VertexSettings
from tests.fakes import render_context
from tests.fakes.google_server import RAI_REASON, FakeGoogle, google_fake, google_server  # noqa: F401

OPEN: list[VertexProvider] = []


@pytest.fixture(autouse=True)
def close_providers():
    yield
    while OPEN:
        OPEN.pop().close()


def vertex(fake: FakeGoogle, env: dict[str, str] | None = None, **settings) -> VertexProvider:
    settings.setdefault("base_url", fake.url)
    settings.setdefault("storage_base_url", fake.url)
    settings.setdefault("poll_interval", 0.01)
    if env is None:
        env = {"VERTEX_ACCESS_TOKEN": fake.token, "GOOGLE_CLOUD_PROJECT": fake.project}
    provider = VertexProvider(VertexSettings(**settings), env=env, rng=random.Random(0))
    OPEN.append(provider)
    return provider


def job(prompt: str = "A lighthouse at dusk", **fields) -> RenderJob:
    return RenderJob(provider="vertex", model=fields.pop("model", "veo-3.1-generate-001"), prompt=prompt, **fields)


def test_inline_bytes_end_to_end(google_fake, tmp_path):
    provider = vertex(google_fake)
    ctx = render_context(tmp_path)
    result = provider.render(job(audio=False, seed=11), tmp_path / "out.mp4", ctx)

    assert probe(tmp_path / "out.mp4").duration == 8.0
    assert result.operation.startswith("projects/fake-project/locations/us-central1/publishers/google/models/"
                                       "veo-3.1-generate-001/operations/")
    assert result.handle is None and result.cost.amount == pytest.approx(3.20)
    body = google_fake.bodies("submit")[0]
    assert body["parameters"] == {"sampleCount": 1, "aspectRatio": "16:9", "resolution": "720p",
                                  "durationSeconds": 8, "seed": 11, "generateAudio": False}
    assert google_fake.bodies("poll")[0] == {"operationName": result.operation}
    assert [google_fake.count(e) for e in ("submit", "poll", "download")] == [1, 3, 0]


def test_gs_output_is_downloaded_through_the_storage_api(google_fake, tmp_path):
    provider = vertex(google_fake, storage_uri="gs://films-bucket/renders/")
    result = provider.render(job(), tmp_path / "out.mp4", render_context(tmp_path))

    assert google_fake.bodies("submit")[0]["parameters"]["storageUri"] == "gs://films-bucket/renders/"
    assert result.handle["gcsUri"].startswith("gs://films-bucket/renders/") and result.handle["gcsUri"].endswith(
        "/sample_0.mp4")
    assert google_fake.count("download") == 1
    assert probe(tmp_path / "out.mp4").duration == 8.0


def test_a_reset_storage_download_is_retried(google_fake, tmp_path):
    google_fake.reset_connection("download")
    vertex(google_fake, storage_uri="gs://b/x").render(job(), tmp_path / "out.mp4", render_context(tmp_path))
    assert google_fake.count("download") == 2 and probe(tmp_path / "out.mp4").duration == 8.0


@pytest.mark.parametrize("storage", [None, "gs://b/ext"])
def test_extension_sends_the_source_clip(google_fake, tmp_path, storage):
    provider = vertex(google_fake, storage_uri=storage)
    first = provider.render(job("The keeper climbs"), tmp_path / "a.mp4", render_context(tmp_path, journal="a"))
    digest = hashlib.sha256((tmp_path / "a.mp4").read_bytes()).hexdigest()
    handles = {digest: first.handle} if first.handle else {}
    ctx = render_context(tmp_path, inputs={digest: tmp_path / "a.mp4"}, handles=handles, journal="b")
    result = provider.render(job("Lightning", extends=digest), tmp_path / "b.mp4", ctx)

    video = google_fake.bodies("submit")[1]["instances"][0]["video"]
    if storage:
        assert video == {"gcsUri": first.handle["gcsUri"], "mimeType": "video/mp4"}
    else:
        assert video["mimeType"] == "video/mp4" and len(video["bytesBase64Encoded"]) > 1000
    assert probe(tmp_path / "b.mp4").duration == 15.0
    assert result.cost.amount == pytest.approx(2.80)


def test_a_safety_block_is_quoted(google_fake, tmp_path):
    with pytest.raises(ProviderError, match="safety filters") as info:
        vertex(google_fake).render(job("A storm [rai]"), tmp_path / "out.mp4", render_context(tmp_path))
    assert RAI_REASON in info.value.message and not info.value.retryable


def test_a_bad_token_fails_at_once_and_is_never_shown(google_fake, tmp_path):
    token = "ya29.secret-token-value"
    provider = vertex(google_fake, env={"VERTEX_ACCESS_TOKEN": token, "GOOGLE_CLOUD_PROJECT": "fake-project"})
    with pytest.raises(ProviderError, match="HTTP 401 .*invalid authentication credentials") as info:
        provider.render(job(), tmp_path / "out.mp4", render_context(tmp_path))
    assert token not in str(info.value) and google_fake.count("submit") == 1


def test_missing_token_without_gcloud_names_the_variable(google_fake, tmp_path):
    provider = vertex(google_fake, env={"GOOGLE_CLOUD_PROJECT": "p", "PATH": str(tmp_path)})
    with pytest.raises(MissingKeyError, match="set VERTEX_ACCESS_TOKEN"):
        provider.render(job(), tmp_path / "out.mp4", render_context(tmp_path))
    assert google_fake.count("submit") == 0


def test_missing_project_names_the_variable(google_fake, tmp_path):
    provider = vertex(google_fake, env={"VERTEX_ACCESS_TOKEN": "t"})
    with pytest.raises(MissingKeyError, match="GOOGLE_CLOUD_PROJECT"):
        provider.check_key()


def test_the_token_comes_from_gcloud_when_not_set(google_fake, tmp_path):
    gcloud = tmp_path / "bin" / "gcloud"
    gcloud.parent.mkdir()
    calls = tmp_path / "calls"
    gcloud.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\necho {google_fake.token}\n")
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
    provider = vertex(google_fake, env={"PATH": str(gcloud.parent), "GOOGLE_CLOUD_PROJECT": google_fake.project})
    provider.render(job(), tmp_path / "a.mp4", render_context(tmp_path, journal="a"))
    provider.render(job("Again"), tmp_path / "b.mp4", render_context(tmp_path, journal="b"))
    assert calls.read_text().splitlines() == ["auth print-access-token"]  # cached between calls


def test_urls_follow_project_and_location():
    env = {"GOOGLE_CLOUD_PROJECT": "p1", "GOOGLE_CLOUD_LOCATION": "europe-west4"}
    provider = VertexProvider(env=env)
    assert provider.base_url == "https://europe-west4-aiplatform.googleapis.com"
    assert provider.submit_url("veo-3.1-generate-001") == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4/publishers/google/"
        "models/veo-3.1-generate-001:predictLongRunning")
    provider = VertexProvider(VertexSettings(project="p2", location="global"), env=env)
    assert provider.base_url == "https://aiplatform.googleapis.com" and provider.project == "p2"
    assert VertexProvider(env={"STORYBOARD_VERTEX_BASE_URL": "http://127.0.0.1:1/"}).base_url == "http://127.0.0.1:1"
    assert VertexProvider(env={}).location == "us-central1"


def test_capabilities_and_prices():
    provider = VertexProvider(env={})
    caps = provider.capabilities("veo-3.1-generate-001")
    assert caps.audio_control and caps.seed and caps.max_extended_seconds == 37
    assert provider.price(job(model="veo-3.1-fast-generate-001", resolution="4k")).amount == pytest.approx(2.40)
    assert provider.price(job(audio=False)).amount == pytest.approx(3.20)
    assert provider.price(job(model="unknown")) is None
    with pytest.raises(Exception, match="storage_urii"):
        VertexSettings.model_validate({"storage_urii": "gs://x"})
