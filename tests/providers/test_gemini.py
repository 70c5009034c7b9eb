import base64
import hashlib
import logging
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from PIL import Image

from storyboard.errors import MissingKeyError, ProviderError
from storyboard.job import RenderJob
from storyboard.media import probe
from storyboard.providers import ProviderSettings
from storyboard.providers.gemini import GeminiProvider
from tests.fakes import render_context
from tests.fakes.google_server import OPERATION_ERROR, RAI_REASON, FakeGoogle, google_fake, google_server  # noqa: F401

KEY = "AIzaFAKE-distinctive-key-0123456789"
OPEN: list[GeminiProvider] = []


@pytest.fixture(autouse=True)
def close_providers():
    yield
    while OPEN:
        OPEN.pop().close()


@pytest.fixture
def fake(google_fake: FakeGoogle) -> FakeGoogle:  # noqa: F811
    google_fake.api_key = KEY
    yield google_fake
    google_fake.api_key = "fake-gemini-key"


def gemini(fake: FakeGoogle, env: dict[str, str] | None = None, **settings) -> GeminiProvider:
    settings.setdefault("base_url", fake.url)
    settings.setdefault("poll_interval", 0.01)
    provider = GeminiProvider(ProviderSettings(**settings), env={"GEMINI_API_KEY": KEY} if env is None else env,
                              rng=random.Random(0))
    OPEN.append(provider)
    return provider


def job(prompt: str = "A lighthouse at dusk", **fields) -> RenderJob:
    return RenderJob(provider="gemini", model=fields.pop("model", "veo-3.1-generate-preview"), prompt=prompt, **fields)


def image(tmp_path: Path, name: str, color: str, fmt: str = "PNG") -> tuple[str, Path]:
    path = tmp_path / name
    Image.new("RGB", (32, 18), color).save(path, fmt)
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


def render(provider, the_job, tmp_path, **ctx):
    context = render_context(tmp_path, **ctx)
    dest = tmp_path / f"{the_job.prompt[:8]}-{len(list(tmp_path.iterdir()))}.mp4"
    return provider.render(the_job, dest, context), dest, context


def test_text_to_video_end_to_end(fake, tmp_path):
    result, dest, ctx = render(gemini(fake), job(seed=7, negative_prompt="blur"), tmp_path)

    info = probe(dest)
    assert (info.duration, info.width, info.height, info.has_audio) == (8.0, 256, 144, True)
    assert result.operation.startswith("models/veo-3.1-generate-preview/operations/")
    assert result.cost.amount == pytest.approx(3.20) and result.cost.unit == "USD"
    assert result.handle["uri"].startswith(f"{fake.url}/v1beta/files/")
    expires = datetime.fromisoformat(result.handle["expires"].replace("Z", "+00:00"))
    assert abs(expires - datetime.now(timezone.utc) - timedelta(days=2)) < timedelta(minutes=1)
    assert ctx.journal.read()["operation"] == result.operation  # the executor clears it once cached

    assert [fake.count(e) for e in ("submit", "poll", "download", "media")] == [1, 3, 1, 1]
    assert fake.submissions == {"A lighthouse at dusk": 1}
    body = fake.bodies("submit")[0]
    assert body == {"instances": [{"prompt": "A lighthouse at dusk"}],
                    "parameters": {"sampleCount": 1, "aspectRatio": "16:9", "resolution": "720p",
                                   "durationSeconds": 8, "negativePrompt": "blur", "seed": 7}}
    states = ctx.progress.firsts
    assert states[0] == "submitted" and "rendering" in states and states[-1] == "downloading"
    assert ctx.progress.calls[-1] == ("downloading", 1.0)


def test_first_and_last_frame_are_sent_inline_with_their_mime_types(fake, tmp_path):
    first, first_path = image(tmp_path, "a.png", "red")
    last, last_path = image(tmp_path, "b.jpg", "blue", "JPEG")
    the_job = job(duration=6, aspect_ratio="9:16", first_frame=first, last_frame=last)
    _, dest, _ = render(gemini(fake), the_job, tmp_path, inputs={first: first_path, last: last_path})

    instance = fake.bodies("submit")[0]["instances"][0]
    assert instance["image"]["mimeType"] == "image/png"
    assert instance["lastFrame"]["mimeType"] == "image/jpeg"
    assert instance["lastFrame"]["bytesBase64Encoded"] == base64.b64encode(last_path.read_bytes()).decode()
    assert (probe(dest).duration, probe(dest).width) == (6.0, 144)


def test_reference_images_are_assets(fake, tmp_path):
    refs = [image(tmp_path, f"r{i}.png", c) for i, c in enumerate(("red", "green", "blue"))]
    the_job = job(resolution="1080p", references=tuple(d for d, _ in refs))
    render(gemini(fake), the_job, tmp_path, inputs=dict(refs))

    instance = fake.bodies("submit")[0]["instances"][0]
    assert [r["referenceType"] for r in instance["referenceImages"]] == ["asset"] * 3
    assert all(r["image"]["mimeType"] == "image/png" for r in instance["referenceImages"])
    assert "image" not in instance and fake.bodies("submit")[0]["parameters"]["resolution"] == "1080p"


def test_extension_sends_the_source_file_uri_and_returns_source_plus_seven(fake, tmp_path):
    provider = gemini(fake)
    first, source, _ = render(provider, job("The keeper climbs"), tmp_path)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    extension = job("Lightning flashes", extends=digest)
    result, dest, _ = render(provider, extension, tmp_path, inputs={digest: source},
                             handles={digest: first.handle}, journal="ext")

    body = fake.bodies("submit")[1]
    assert body["instances"][0] == {"prompt": "Lightning flashes", "video": {"uri": first.handle["uri"]}}
    assert body["parameters"] == {"sampleCount": 1, "resolution": "720p"}
    assert probe(dest).duration == 15.0
    assert result.cost.amount == pytest.approx(2.80)  # 7 new seconds at $0.40
    assert result.handle["uri"] != first.handle["uri"]


@pytest.mark.parametrize("handle, says", [
    (None, "has no Gemini file handle"),
    ({"gcsUri": "gs://b/x.mp4"}, "has no Gemini file handle"),
    ({"uri": "https://x/files/abc", "expires": "2020-01-01T00:00:00Z"}, "expired at 2020-01-01T00:00:00Z"),
])
def test_extension_without_a_live_handle_fails_before_paying(fake, tmp_path, handle, says):
    digest = "ab" * 32
    handles = {digest: handle} if handle else {}
    with pytest.raises(ProviderError, match=says) as info:
        render(gemini(fake), job(extends=digest), tmp_path, handles=handles)
    assert "regenerate the source shot" in info.value.message
    assert fake.count("submit") == 0


@pytest.mark.parametrize("marker", ["[rai]", "[rai-top]"])
def test_a_safety_block_fails_at_once_quoting_the_reason(fake, tmp_path, marker):
    with pytest.raises(ProviderError) as info:
        render(gemini(fake), job(f"A storm {marker}"), tmp_path)
    err = info.value
    assert f'"{RAI_REASON}"' in err.message and "safety" in err.message
    assert err.message.startswith("shot 'shot': gemini:")
    assert not err.retryable
    assert fake.count("download") == 0


def test_an_operation_error_is_quoted_and_clears_the_journal(fake, tmp_path):
    with pytest.raises(ProviderError, match=OPERATION_ERROR["message"]) as info:
        render(gemini(fake), job("A storm [error]"), tmp_path)
    assert not info.value.retryable
    assert not (tmp_path / "journal" / "job.json").exists()


def test_429_then_success_honours_retry_after(fake, tmp_path):
    fake.fail("submit", 429, times=2, retry_after="2")
    _, dest, ctx = render(gemini(fake), job(), tmp_path)
    assert fake.count("submit") == 3 and fake.submissions == {"A lighthouse at dusk": 1}
    assert ctx.sleep.firsts[:2] == [2.0, 2.0]
    assert probe(dest).duration == 8.0


def test_503_twice_on_poll_then_success(fake, tmp_path):
    fake.fail("poll", 503, times=2)
    _, dest, ctx = render(gemini(fake), job(), tmp_path)
    assert fake.count("poll") == 5 and fake.count("submit") == 1
    backoffs = [s for s in ctx.sleep.firsts if s != 0.01]
    assert len(backoffs) == 2 and 1 <= backoffs[0] <= 2 and 2 <= backoffs[1] <= 4


@pytest.mark.parametrize("endpoint", ["poll", "download", "media"])  # submit: tests/test_paid_once.py
def test_a_reset_connection_is_retried(fake, tmp_path, endpoint):
    fake.reset_connection(endpoint)
    _, dest, _ = render(gemini(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0
    assert fake.submissions == {"A lighthouse at dusk": 1}


def test_401_fails_at_once_with_the_api_message(fake, tmp_path):
    fake.fail("submit", 401, message="The caller does not have permission")
    with pytest.raises(ProviderError, match="HTTP 401 .*The caller does not have permission") as info:
        render(gemini(fake), job(), tmp_path)
    assert info.value.status == 401 and not info.value.retryable
    assert fake.count("submit") == 1


def test_the_key_never_appears_in_messages_logs_or_the_journal(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "AIzaWRONG-key-that-must-stay-secret"
    ctx = render_context(tmp_path)
    with pytest.raises(ProviderError, match="API key not valid") as info:
        gemini(fake, env={"GEMINI_API_KEY": wrong}).render(job(), tmp_path / "x.mp4", ctx)
    assert wrong not in str(info.value) and wrong not in caplog.text

    fake.fail("poll", 503, times=1, message=f"echoing {KEY} back")  # an API that quotes the key
    fake.fail("download", 400, message=f"bad request for key {KEY}")
    with pytest.raises(ProviderError) as info:
        render(gemini(fake), job(), tmp_path, journal="second")
    chain = []
    exc = info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert "***" in str(info.value)
    assert all(KEY not in text for text in chain)
    assert KEY not in caplog.text
    assert KEY not in (tmp_path / "journal" / "second.json").read_text()


def test_resume_polls_the_journaled_operation_without_submitting(fake, tmp_path):
    name = fake.start_operation("A lighthouse at dusk")
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": name, "provider": "gemini", "submitted": "2026-01-01T00:00:00Z"})
    result = gemini(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert result.operation == name
    assert fake.count("submit") == 0 and fake.count("poll") == 3
    assert probe(tmp_path / "out.mp4").duration == 8.0


def test_resume_of_a_vanished_operation_submits_anew(fake, tmp_path, caplog):
    name = fake.start_operation("A lighthouse at dusk")
    fake.forget_operations()
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": name, "provider": "gemini", "submitted": "2026-01-01T00:00:00Z"})
    result = gemini(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert result.operation != name and fake.count("submit") == 1
    assert ctx.journal.read()["operation"] == result.operation
    assert "is gone" in caplog.text


def test_another_providers_journal_entry_is_not_resumed(fake, tmp_path):
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": "tasks/123", "provider": "apiframe", "submitted": "2026-01-01T00:00:00Z"})
    gemini(fake).render(job(), tmp_path / "out.mp4", ctx)
    assert fake.count("submit") == 1


def test_missing_key_names_the_variable_and_google_api_key_is_the_fallback(fake, tmp_path):
    with pytest.raises(MissingKeyError, match="set GEMINI_API_KEY \\(or GOOGLE_API_KEY\\)"):
        render(gemini(fake, env={}), job(), tmp_path)
    assert fake.count("submit") == 0
    render(gemini(fake, env={"GOOGLE_API_KEY": KEY}), job(), tmp_path)
    assert fake.count("submit") == 1


def test_a_truncated_download_is_retried(fake, tmp_path):
    fake.truncate(times=1)
    _, dest, _ = render(gemini(fake), job(), tmp_path)
    assert probe(dest).duration == 8.0 and fake.count("media") == 2


def test_a_download_that_stays_truncated_fails_and_leaves_no_file(fake, tmp_path):
    fake.truncate(times=10)
    ctx = render_context(tmp_path)
    dest = tmp_path / "out.mp4"
    dest.write_bytes(b"")
    with pytest.raises(ProviderError, match="gave up after 6 tries") as info:
        gemini(fake).render(job(), dest, ctx)
    assert info.value.retryable and not dest.exists()
    assert ctx.journal.read()["operation"]  # kept: the next build downloads without paying again


def test_the_environment_overrides_the_base_url(fake, tmp_path):
    provider = gemini(fake, env={"GEMINI_API_KEY": KEY, "STORYBOARD_GEMINI_BASE_URL": fake.url},
                      base_url="http://127.0.0.1:9")
    assert provider.base_url == fake.url
    render(provider, job(), tmp_path)
    assert fake.count("submit") == 1
    assert GeminiProvider(env={}).base_url == "https://generativelanguage.googleapis.com"


def test_an_unknown_model_is_passed_through_and_its_404_quoted(fake, tmp_path):
    with pytest.raises(ProviderError, match="models/veo-9-preview is not found") as info:
        render(gemini(fake), job(model="veo-9-preview"), tmp_path)
    assert info.value.status == 404 and fake.count("submit") == 1


def test_capabilities_and_prices():
    provider = GeminiProvider(env={})
    caps = provider.capabilities("veo-3.1-generate-preview")
    assert not caps.audio_control and caps.seed and caps.max_references == 3 and caps.max_extended_seconds == 148
    assert "4k" not in provider.capabilities("veo-3.1-lite-generate-preview").resolutions
    assert provider.capabilities("some-future-model") == caps
    fast = "veo-3.1-fast-generate-preview"
    assert provider.price(job(model=fast, resolution="4k")).amount == pytest.approx(2.40)
    assert provider.price(job(model=fast, resolution="1080p", duration=8)).amount == pytest.approx(0.96)
    assert provider.price(job(model=fast, duration=4)).amount == pytest.approx(0.40)
    assert provider.price(job(model="some-future-model")) is None
    assert (GeminiProvider.default_concurrency, GeminiProvider.default_rpm) == (2, 10)
    assert provider.concurrency == 2 and GeminiProvider(ProviderSettings(concurrency=5), env={}).concurrency == 5


def test_no_client_is_built_until_first_use():
    provider = GeminiProvider(env={})
    assert provider._client is None
    assert isinstance(provider.client, httpx.Client) and provider.client is provider.client
    assert provider.client.timeout.connect == 10.0 and provider.client.timeout.read == 60.0
    provider.close()


def test_mock_transport_progress_from_metadata(tmp_path):
    polls = iter([{"name": "models/m/operations/1", "metadata": {"progressPercent": 40}},
                  {"name": "models/m/operations/1", "done": True, "error": {"code": 3, "message": "bad input"}}])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"name": "models/m/operations/1"})
        return httpx.Response(200, json=next(polls))

    client = httpx.Client(transport=httpx.MockTransport(handler))
    provider = GeminiProvider(env={"GEMINI_API_KEY": KEY}, client=client)
    ctx = render_context(tmp_path)
    with pytest.raises(ProviderError, match=r"the operation failed: bad input \(code 3\)"):
        provider.render(job(), tmp_path / "x.mp4", ctx)
    assert ("rendering", 0.4) in ctx.progress.calls
    assert ctx.journal.read() is None


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16)).decode()


def submit_raw(fake: FakeGoogle, body, key: str = KEY) -> httpx.Response:
    return httpx.post(f"{fake.url}/v1beta/models/veo-3.1-generate-preview:predictLongRunning", json=body,
                      headers={"x-goog-api-key": key})


@pytest.mark.parametrize("instance, parameters", [
    ({"prompt": "p", "image": {"inlineData": {"mimeType": "image/png", "data": PNG}}}, {"durationSeconds": "6"}),
    ({"prompt": "p", "image": {"bytesBase64Encoded": PNG, "mimeType": "image/png"}}, {"numberOfVideos": 1}),
    ({"prompt": "p", "referenceImages": [{"image": {"inlineData": {"mimeType": "image/png", "data": PNG}},
                                          "referenceType": "asset"}]}, {"durationSeconds": 8, "sampleCount": 1}),
])
def test_the_fake_accepts_every_documented_form(fake, instance, parameters):
    response = submit_raw(fake, {"instances": [instance], "parameters": parameters})
    assert response.status_code == 200, response.text
    assert fake.bodies("submit")[0]["parameters"] == parameters


@pytest.mark.parametrize("instance, parameters, says", [
    ({"prompt": "p", "lastFrame": {"bytesBase64Encoded": PNG, "mimeType": "image/png"}}, {},
     "lastFrame must be used in combination with image"),
    ({"prompt": "p", "image": {"bytesBase64Encoded": PNG, "mimeType": "image/png"},
      "referenceImages": [{"image": {"bytesBase64Encoded": PNG, "mimeType": "image/png"}, "referenceType": "asset"}]},
     {}, "cannot be combined"),
    ({"prompt": "p"}, {"resolution": "1080p", "durationSeconds": 4}, "need durationSeconds 8"),
    ({"prompt": "p"}, {"durationSeconds": 5}, "must be 4, 6 or 8"),
    ({"prompt": "p"}, {"generateAudio": True}, 'Unknown name "generateAudio"'),
    ({"prompt": "p", "image": {"gcsUri": "gs://b/x.png", "mimeType": "image/png"}}, {}, "gcsUri is not supported"),
    ({"prompt": "p", "image": {"bytesBase64Encoded": PNG, "mimeType": "image/jpeg"}}, {}, "not image/jpeg"),
    ({"prompt": "p", "video": {"uri": "https://x/files/nope:download"}}, {}, "generated by Veo"),
])
def test_the_fake_enforces_the_veo_rules(fake, instance, parameters, says):
    response = submit_raw(fake, {"instances": [instance], "parameters": parameters})
    assert response.status_code == 400 and says in response.json()["error"]["message"]
    assert fake.submissions == {}


def test_the_fake_checks_the_key():
    with FakeGoogle() as fake:
        assert submit_raw(fake, {"instances": [{"prompt": "p"}]}, key="wrong").json()["error"]["details"][0][
            "reason"] == "API_KEY_INVALID"
        assert submit_raw(fake, {"instances": [{"prompt": "p"}]}, key="").status_code == 403


def test_the_fake_runs_as_a_standalone_process():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.google_server", "--port", "0", "--pending-polls", "0"],
                            cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        stats = httpx.post(f"{url}/_fake/config", json={"fail": [{"endpoint": "submit", "status": 503}]}).json()
        assert stats == {"counts": {}, "submissions": {}, "operations": 0}
        body = {"instances": [{"prompt": "p"}]}
        headers = {"x-goog-api-key": "fake-gemini-key"}
        submit = f"{url}/v1beta/models/veo-3.1-generate-preview:predictLongRunning"
        assert httpx.post(submit, json=body, headers=headers).status_code == 503
        assert httpx.post(submit, json=body, headers=headers).status_code == 200
        assert httpx.get(f"{url}/_fake/stats").json()["submissions"] == {"p": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
