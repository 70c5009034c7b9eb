"""OmniProvider against the loopback Interactions fake: every task, both platforms, the fault matrix."""

from __future__ import annotations

import base64
import hashlib
import random
from pathlib import Path

import pytest
from PIL import Image

from storyboard.errors import MissingKeyError, ProviderError
from storyboard.job import RenderJob
from storyboard.media import probe
from storyboard.providers import available, load_provider
from storyboard.providers.omni import OMNI_11, OMNI_12, OmniProvider, OmniSettings, usage_cost
from tests.fakes import render_context
from tests.fakes._kit import Fault
from tests.fakes.interactions_server import FakeInteractions, clip

KEY = "AIzaOMNI-distinctive-key-9876543210"
TOKEN = "ya29.omni-distinctive-token"


@pytest.fixture(scope="module")
def server():
    with FakeInteractions(api_key=KEY, token=TOKEN) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeInteractions) -> FakeInteractions:
    server.reset()
    server.polls = 1
    return server


def omni(fake: FakeInteractions, env: dict[str, str] | None = None, **settings) -> OmniProvider:
    settings.setdefault("base_url", fake.url)
    settings.setdefault("poll_interval", 0.01)
    return OmniProvider(OmniSettings(**settings), env={"GEMINI_API_KEY": KEY} if env is None else env,
                        rng=random.Random(0))


def job(prompt: str = "a lighthouse at dusk", **fields) -> RenderJob:
    fields.setdefault("duration", 3)
    fields.setdefault("resolution", "360p")
    return RenderJob(provider="omni", model=fields.pop("model", "gemini-omni-1.2-flash"), prompt=prompt, **fields)


def image(tmp_path: Path, name: str, color: str) -> tuple[str, Path]:
    path = tmp_path / name
    Image.new("RGB", (32, 18), color).save(path, "PNG")
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


def video(tmp_path: Path, frames: int = 72) -> tuple[str, Path]:
    path = tmp_path / f"source-{frames}.mp4"
    path.write_bytes(clip(frames, (640, 360)))
    return hashlib.sha256(path.read_bytes()).hexdigest(), path


def render(provider: OmniProvider, the_job: RenderJob, tmp_path: Path, journal: str = "job", **ctx):
    """One render; renders in one test that must not resume each other pass their own `journal`."""
    context = render_context(tmp_path, journal=journal, **ctx)
    dest = tmp_path / f"out-{len(list(tmp_path.iterdir()))}.mp4"
    try:
        return provider.render(the_job, dest, context), dest, context
    finally:
        provider.close()


def test_registered_as_a_builtin():
    assert available()["omni"] == "storyboard.providers.omni:OmniProvider"
    assert isinstance(load_provider("omni"), OmniProvider)


def test_text_to_video_in_the_background_with_cost_from_usage(fake, tmp_path):
    result, dest, ctx = render(omni(fake), job(seed=5, duration=4), tmp_path)

    info = probe(dest)
    assert (round(info.duration, 2), info.width, info.height) == (4.0, 640, 360)
    body = fake.bodies("create")[0]
    assert body == {"model": "gemini-omni-1.2-flash", "input": "a lighthouse at dusk",
                    "response_format": {"type": "video", "resolution": "360p", "aspect_ratio": "16:9",
                                        "duration": "4s"},
                    "generation_config": {"video_config": {"task": "text_to_video"}, "seed": 5},
                    "background": True, "store": True}
    assert ctx.journal.read()["operation"] == result.operation and result.operation.startswith("v1_")
    assert (fake.count("create"), fake.count("poll")) == (1, 2)
    tokens = round(4 * 1931)
    assert result.cost.amount == pytest.approx(round((tokens * 17.5 + 310 * 9 + 12 * 1.5) / 1e6, 4))
    seen = fake.seen[0]
    assert seen.headers["x-goog-api-key"] == KEY and "key" not in seen.query and "authorization" not in seen.headers


def test_the_estimate_uses_tokens_per_second():
    provider = OmniProvider()
    assert provider.price(job(duration=6, resolution="720p")).amount == pytest.approx(round(6 * 5792 * 17.5 / 1e6, 4))
    assert provider.price(job(duration=6, resolution="1080p")).amount > provider.price(job(duration=6)).amount


def test_image_first_last_and_references_send_their_images_in_order(fake, tmp_path):
    first, first_path = image(tmp_path, "a.png", "red")
    last, last_path = image(tmp_path, "b.png", "blue")
    inputs = {first: first_path, last: last_path}
    render(omni(fake), job(first_frame=first), tmp_path, "a", inputs=inputs)
    render(omni(fake), job(first_frame=first, last_frame=last), tmp_path, "b", inputs=inputs)
    render(omni(fake), job(references=(first, last)), tmp_path, "c", inputs=inputs)

    bodies = fake.bodies("create")
    tasks = [b["generation_config"]["video_config"]["task"] for b in bodies]
    assert tasks == ["image_to_video", "image_to_video", "reference_to_video"]
    datas = [[c.get("data") for c in b["input"][0]["content"] if c["type"] == "image"] for b in bodies]
    encoded = {d: base64.b64encode(p.read_bytes()).decode() for d, p in inputs.items()}
    assert datas == [[encoded[first]], [encoded[first], encoded[last]], [encoded[first], encoded[last]]]
    assert all(b["input"][0]["content"][-1] == {"type": "text", "text": "a lighthouse at dusk"} for b in bodies)


def test_edit_sends_the_clip_without_aspect_ratio_and_returns_its_length(fake, tmp_path):
    digest, path = video(tmp_path, frames=84)
    result, dest, _ = render(omni(fake), job("make it night", edits=digest, duration=3.5), tmp_path,
                             inputs={digest: path})

    body = fake.bodies("create")[0]
    assert body["generation_config"]["video_config"]["task"] == "edit"
    assert body["response_format"] == {"type": "video", "resolution": "360p"}
    assert body["input"][0]["content"][0]["data"] == base64.b64encode(path.read_bytes()).decode()
    assert probe(dest).frames == 84


def test_extension_asks_for_seven_more_seconds(fake, tmp_path):
    digest, path = video(tmp_path, frames=72)
    _, dest, _ = render(omni(fake), job("keep going", extends=digest), tmp_path, inputs={digest: path})
    body = fake.bodies("create")[0]
    assert body["generation_config"]["video_config"]["task"] == "extend"
    assert body["response_format"]["duration"] == "7s"
    assert probe(dest).frames == 72 + 7 * 24


def test_an_edit_longer_than_ten_seconds_fails_before_paying(fake, tmp_path):
    digest, path = video(tmp_path, frames=24)
    with pytest.raises(ProviderError, match="at most 10 s"):
        render(omni(fake), job("night", edits=digest, duration=12), tmp_path, inputs={digest: path})
    assert fake.count("create") == 0


def test_agent_platform_uses_a_bearer_token_and_the_global_location(fake, tmp_path):
    env = {"VERTEX_ACCESS_TOKEN": TOKEN, "GOOGLE_CLOUD_PROJECT": "films"}
    provider = omni(fake, env=env, platform="vertex")
    result, dest, _ = render(provider, job(model="gemini-omni-1.1-flash-preview"), tmp_path)
    paths = [r.path for r in fake.seen]
    assert paths[0] == "/v1beta1/projects/films/locations/global/interactions"
    assert paths[1] == f"/v1beta1/projects/films/locations/global/interactions/{result.operation}"
    assert fake.seen[0].headers["authorization"] == f"Bearer {TOKEN}" and "x-goog-api-key" not in fake.seen[0].headers
    assert OmniProvider(OmniSettings(platform="vertex"), env=env).capabilities("gemini-omni-flash-preview").resolutions \
        == frozenset({"720p"})


def test_missing_credentials_name_the_variable(fake, tmp_path):
    with pytest.raises(MissingKeyError, match="GEMINI_API_KEY"):
        render(omni(fake, env={}), job(), tmp_path)
    with pytest.raises(MissingKeyError, match="VERTEX_ACCESS_TOKEN"):
        render(omni(fake, env={"GOOGLE_CLOUD_PROJECT": "p", "HOME": str(tmp_path), "NO_GCE_CHECK": "true"},
                    platform="vertex"), job(), tmp_path)
    assert fake.count("create") == 0


def test_capabilities_per_model():
    assert OMNI_11.durations == frozenset(range(3, 11)) and not OMNI_11.seed and not OMNI_11.negative_prompt
    assert OMNI_12.durations == frozenset(range(3, 16)) and OMNI_12.seed and OMNI_12.edit
    assert "360p" in OMNI_11.resolutions and not OMNI_11.audio_control


def test_usage_cost_reads_video_tokens_by_modality():
    usage = {"total_input_tokens": 1000, "total_output_tokens": 6000, "total_thought_tokens": 0,
             "output_tokens_by_modality": [{"modality": "video", "tokens": 5000}, {"modality": "text"}]}
    assert usage_cost(usage) == pytest.approx(round((5000 * 17.5 + 1000 * 9 + 1000 * 1.5) / 1e6, 4))
    assert usage_cost({}) is None


# ---- faults -------------------------------------------------------------------------------------


def test_429_with_retry_after_and_5xx_are_retried(fake, tmp_path):
    fake.faults.add("create", Fault.status_code(429, retry_after="2"))
    fake.faults.add("poll", Fault.status_code(503), times=2)
    result, dest, ctx = render(omni(fake), job(), tmp_path)
    assert dest.is_file() and fake.count("create") == 2
    assert ctx.sleep.firsts[0] == 2.0


def test_a_reset_after_the_poll_was_read_is_retried(fake, tmp_path):
    fake.faults.add("poll", Fault.reset_after())
    _, dest, _ = render(omni(fake), job(), tmp_path)
    assert dest.is_file() and fake.count("create") == 1


@pytest.mark.parametrize("token, words", [
    ("[blocked]", "content_blocked"),
    ("[filtered]", "completed without a video"),
    ("[userinput]", "completed without a video"),
    ("[failed]", "ended 'failed': Video generation failed."),
])
def test_blocked_filtered_and_failed_jobs_fail_and_clear_the_journal(fake, tmp_path, token, words):
    with pytest.raises(ProviderError, match=words) as caught:
        render(omni(fake), job(f"a storm {token}"), tmp_path)
    assert not caught.value.retryable
    assert render_context(tmp_path).journal.read() is None
    assert fake.count("create") == 1


def test_a_journaled_interaction_is_resumed_not_created_again(fake, tmp_path):
    fake.polls = 50
    provider = omni(fake)
    ctx = render_context(tmp_path)
    ident = provider.submit(job(), ctx)
    provider.close()
    ctx.journal.write({"operation": ident, "provider": "omni", "model": "gemini-omni-1.2-flash"})
    fake.finish_all()
    result, dest, _ = render(omni(fake), job(), tmp_path)
    assert result.operation == ident and fake.count("create") == 1 and dest.is_file()


def test_a_forgotten_interaction_is_created_again(fake, tmp_path):
    ctx = render_context(tmp_path)
    ctx.journal.write({"operation": "v1_gone", "provider": "omni", "model": "gemini-omni-1.2-flash"})
    result, dest, _ = render(omni(fake), job(), tmp_path)
    assert result.operation != "v1_gone" and fake.count("create") == 1


def test_a_hostile_answer_fails_cleanly_and_the_key_never_leaks(fake, tmp_path):
    fake.faults.add("create", Fault.hostile(b"[" * 5000))
    with pytest.raises(ProviderError) as caught:
        render(omni(fake), job(), tmp_path)
    assert KEY not in str(caught.value)


def test_a_negative_prompt_is_refused_not_dropped(fake, tmp_path):
    with pytest.raises(ProviderError, match="negative prompt"):
        render(omni(fake), job(negative_prompt="blur"), tmp_path)
    assert fake.count("create") == 0


def test_a_reset_after_the_create_left_is_not_sent_again(fake, tmp_path):
    """The client cannot tell whether a reset create was read: no second create, the shot is journaled uncertain."""
    fake.faults.add("create", Fault.reset_before())
    with pytest.raises(ProviderError, match="may have started and been charged") as info:
        render(omni(fake), job(), tmp_path)
    assert len(fake.interactions) == 0  # the one-shot fault would have let a retry through: none was sent
    assert "aistudio.google.com/usage" in info.value.message and "--resubmit shot" in info.value.message
    entry = render_context(tmp_path, journal="job").journal.read()
    assert entry["uncertain"] is True and entry["provider"] == "omni"


def test_a_lost_create_answer_is_not_paid_twice(fake, tmp_path):
    """No idempotency key exists: a create whose answer was lost is not retried blindly (one billed job, not two)."""
    fake.faults.add("create", Fault.lose_answer())
    with pytest.raises(ProviderError, match="may have started and been charged") as info:
        render(omni(fake), job(), tmp_path)
    assert len(fake.interactions) == 1
    assert render_context(tmp_path, journal="job").journal.read()["uncertain"] is True


def test_a_slow_poll_is_waited_for(fake, tmp_path):
    fake.faults.add("poll", Fault.slow(0.3))
    _, dest, _ = render(omni(fake), job(), tmp_path)
    assert dest.is_file() and fake.count("poll") == 2
