import hashlib
import random

import pytest
from PIL import Image
from pydantic import ValidationError

from storyboard.errors import MissingKeyError, ProviderError
from storyboard.job import RenderJob
from storyboard.media import probe
from storyboard.providers._hosts import Destination, refusal
from storyboard.providers.settings import validate_settings
from storyboard.providers.vertex import VertexProvider, VertexSettings, endpoint
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
    assert result.handle is None and result.cost.amount == pytest.approx(1.60)  # 8 s silent at $0.20
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


def test_missing_credentials_name_every_way_to_give_them(google_fake, tmp_path):
    provider = vertex(google_fake, env={"GOOGLE_CLOUD_PROJECT": "p", "HOME": str(tmp_path), "NO_GCE_CHECK": "1"})
    with pytest.raises(MissingKeyError, match="gcloud auth application-default login.*VERTEX_ACCESS_TOKEN"):
        provider.check_key()
    with pytest.raises(MissingKeyError):
        provider.render(job(), tmp_path / "out.mp4", render_context(tmp_path))
    assert google_fake.count("submit") == 0


def test_missing_project_names_the_variable(google_fake, tmp_path):
    provider = vertex(google_fake, env={"VERTEX_ACCESS_TOKEN": "t"})
    with pytest.raises(MissingKeyError, match="GOOGLE_CLOUD_PROJECT"):
        provider.check_key()


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
    assert provider.price(job(audio=False)).amount == pytest.approx(1.60)
    assert provider.price(job(model="veo-3.1-lite-generate-001", resolution="1080p", audio=False)).amount == \
        pytest.approx(0.40)
    assert provider.price(job(model="unknown")) is None
    with pytest.raises(Exception, match="storage_urii"):
        validate_settings(VertexSettings, {"storage_urii": "gs://x"})


@pytest.mark.parametrize("location, host", [
    ("global", "aiplatform.googleapis.com"),
    ("us", "aiplatform.us.rep.googleapis.com"),
    ("eu", "aiplatform.eu.rep.googleapis.com"),
    ("us-central1", "us-central1-aiplatform.googleapis.com"),
    ("europe-west4", "europe-west4-aiplatform.googleapis.com"),
])
def test_the_host_follows_the_location_like_the_sdk(location, host):
    assert endpoint(location) == f"https://{host}"
    provider = VertexProvider(VertexSettings(project="p", location=location), env={})
    assert provider.submit_url("veo-3.1-generate-001") == (
        f"https://{host}/v1/projects/p/locations/{location}/publishers/google/models/"
        "veo-3.1-generate-001:predictLongRunning")
    [api] = provider.destinations()
    assert (api.field, api.source) == ("location", "board") and refusal(api, "vertex", ()) is None


def test_only_googles_own_regional_hosts_are_official():
    official = VertexProvider.official_hosts
    for url in ("https://aiplatform.asia.rep.googleapis.com", "https://aiplatform.us.rep.evil.com",
                "https://us.rep-aiplatform.googleapis.com.evil.com"):
        assert refusal(Destination("location", url, "board", official), "vertex", ()) is not None, url
    provider = VertexProvider(VertexSettings(project="p", location="evil.example#"), env={})
    with pytest.raises(ProviderError, match="not vertex's own host"):
        provider.check_destinations()


def test_the_vertex_options_go_into_the_parameters(google_fake, tmp_path):
    provider = vertex(google_fake, person_generation="allow_all", compression_quality="lossless",
                      resize_mode="crop", storage_uri="gs://films/out/", sample_count=1)
    provider.render(job(), tmp_path / "a.mp4", render_context(tmp_path, journal="a"))
    image = tmp_path / "first.png"
    Image.new("RGB", (64, 36), (10, 20, 30)).save(image)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    provider.render(job("From the frame", first_frame=digest), tmp_path / "b.mp4",
                    render_context(tmp_path, inputs={digest: image}, journal="b"))

    text, framed = (b["parameters"] for b in google_fake.bodies("submit"))
    options = {"personGeneration": "allow_all", "compressionQuality": "lossless", "storageUri": "gs://films/out/",
               "sampleCount": 1}
    assert options.items() <= text.items() and "resizeMode" not in text  # image-to-video only
    assert options.items() <= framed.items() and framed["resizeMode"] == "crop"


def test_without_options_none_is_sent(google_fake, tmp_path):
    vertex(google_fake).render(job(), tmp_path / "a.mp4", render_context(tmp_path))
    parameters = google_fake.bodies("submit")[0]["parameters"]
    assert not {"personGeneration", "compressionQuality", "resizeMode", "storageUri"} & parameters.keys()


@pytest.mark.parametrize("field, value, message", [
    ("person_generation", "everyone", "allow_adult"),
    ("resize_mode", "stretch", "pad"),
    ("compression_quality", "best", "optimized"),
    ("storage_uri", "s3://bucket/out/", "gs://BUCKET/FOLDER/"),
    ("storage_uri", "gs:///out/", "gs://BUCKET/FOLDER/"),
    ("sample_count", 0, "1 to 4"),
    ("sample_count", 5, "1 to 4"),
    ("sample_count", 2, "keep one.*take"),
])
def test_bad_options_are_refused_when_the_table_loads(field, value, message):
    with pytest.raises(ValidationError, match=message):
        validate_settings(VertexSettings, {field: value})


def test_the_fake_refuses_what_vertex_refuses(google_fake, tmp_path):
    """The fake holds the client to the documented values (so the tests above mean something)."""
    import httpx

    url = (f"{google_fake.url}/v1/projects/{google_fake.project}/locations/us-central1/publishers/google/models/"
           "veo-3.1-generate-001:predictLongRunning")
    headers = {"Authorization": f"Bearer {google_fake.token}"}
    for parameters in ({"personGeneration": "everyone"}, {"resizeMode": "pad"}, {"storageUri": "/tmp/x"},
                       {"compressionQuality": "best"}):
        response = httpx.post(url, json={"instances": [{"prompt": "x"}], "parameters": parameters}, headers=headers)
        assert response.status_code == 400, parameters
    response = httpx.post(url, json={"instances": [{"prompt": "x"}], "parameters": {"resizeMode": "PAD"}},
                          headers=headers)
    assert "image-to-video" in response.json()["error"]["message"]
