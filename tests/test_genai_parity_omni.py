"""storyboard's Omni requests against the ones Google's own SDK (google-genai 2.34.0, `client.interactions`) sends.

Both land on one loopback capture server (a tests.fakes._kit fake): storyboard's OmniProvider
through its real `submit` and `poll`, the SDK through `client.interactions.create` / `.get`
pointed there with `http_options.base_url` (a fake API key on the Gemini API; `vertexai=True` with a
static fake OAuth token on Agent Platform). For every task storyboard sends (text to video, image
to video, first + last frame, references, extension, edit) on both surfaces, the create bodies
must be equal key for key and value for value (JSON types too), once every base64 payload is
replaced by the digest of its bytes.

The SDK side is the shot written as google-2026.md §1.3-1.4 shows it: the prompt as a string when
there is no media, else a flat list of content blocks (media first, the text last), which the SDK
wraps into one `user_input` step, exactly as storyboard sends it; `response_format` a single video
object; the task named in `generation_config.video_config`; `background` and `store` true.

Differences the test accepts, field by field (POLL_QUERIES): the SDK's poll adds `?stream=false`
to `GET …/interactions/{id}`; storyboard sends no query (the API's default is not streaming, and
google-2026.md §4 has servers ignore it). Nothing in the create body differs.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types
from google.oauth2 import credentials as oauth
from PIL import Image

from storyboard.job import RenderJob
from storyboard.providers.omni import OmniProvider, OmniSettings
from tests.fakes import render_context
from tests.fakes._kit import LoopbackFake, Reply, Request, json_reply
from tests.fakes.interactions_server import clip
from tests.test_genai_parity import GOOGLE_ENV

KEY = "AIzaFAKE-omni-parity-key"
TOKEN = "ya29.fake-omni-parity-token"
PROJECT = "parity-project"
MODEL = "gemini-omni-1.2-flash"
POLL_QUERIES = ({}, {"stream": ["false"]})
"""(ours, the SDK's) query of the poll: the one difference allowed (the create carries none on either side)."""


class Capture(LoopbackFake):
    """Records every request; a create starts an interaction, a GET says it is still running."""

    def route(self, req: Request) -> Reply:
        ident = req.path.rsplit("/", 1)[-1] if req.method == "GET" else f"v1_parity{len(self.seen)}"
        return json_reply({"id": ident, "object": "interaction", "model": MODEL, "status": "in_progress"})

    def endpoint(self, req: Request) -> str:
        return "poll" if req.method == "GET" else "create"


@pytest.fixture(scope="module")
def capture() -> Iterator[Capture]:
    with pytest.MonkeyPatch.context() as env:
        for name in GOOGLE_ENV:  # the SDK reads these; the test names everything itself
            env.delenv(name, raising=False)
        with Capture() as server:
            yield server


@pytest.fixture(scope="module")
def sdk(capture: Capture) -> Iterator[dict[str, Any]]:
    """One google-genai client per surface, pointed at the capture server."""
    options = types.HttpOptions(base_url=capture.url)
    clients = {"gemini": genai.Client(api_key=KEY, http_options=options),
               "vertex": genai.Client(vertexai=True, project=PROJECT, location="global",
                                      credentials=oauth.Credentials(token=TOKEN), http_options=options)}
    yield clients
    for client in clients.values():
        client.close()


@dataclass(frozen=True)
class Inputs:
    paths: dict[str, Path] = field(default_factory=dict)

    def digest(self, name: str) -> str:
        return hashlib.sha256(self.paths[name].read_bytes()).hexdigest()

    def block(self, name: str) -> dict[str, str]:
        """The content block google-2026.md §1.3 shows for this file."""
        kind, mime = {".png": ("image", "image/png"), ".jpg": ("image", "image/jpeg"),
                      ".mp4": ("video", "video/mp4")}[self.paths[name].suffix]
        return {"type": kind, "mime_type": mime, "data": base64.b64encode(self.paths[name].read_bytes()).decode()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    folder = tmp_path_factory.mktemp("omni-parity")
    paths = {}
    for name, colour, suffix, fmt in (("first", "navy", ".png", "PNG"), ("last", "orange", ".jpg", "JPEG"),
                                      ("ref_a", "teal", ".png", "PNG"), ("ref_b", "maroon", ".jpg", "JPEG"),
                                      ("ref_c", "olive", ".png", "PNG")):
        paths[name] = folder / f"{name}{suffix}"
        Image.new("RGB", (32, 18), colour).save(paths[name], fmt)
    paths["source"] = folder / "source.mp4"
    paths["source"].write_bytes(clip(48, (640, 360)))
    return Inputs(paths)


# ---- the shots ------------------------------------------------------------------------------------

SHOTS: dict[str, dict[str, Any]] = {
    "text_to_video": dict(prompt="A lighthouse at dusk, waves breaking on the rocks", duration=6.5,
                          aspect_ratio="9:16", resolution="720p", seed=4242),
    "image_to_video": dict(prompt="The keeper opens the door", first_frame="first", duration=4, resolution="360p"),
    "first_last_frame": dict(prompt="The bud opens into a blossom", first_frame="first", last_frame="last",
                             duration=5, resolution="1080p"),
    "reference_to_video": dict(prompt="<IMAGE_REF_0> at the wheel of <IMAGE_REF_1>, <IMAGE_REF_2> on the deck",
                               references=("ref_a", "ref_b", "ref_c"), duration=8, resolution="4k"),
    "extend": dict(prompt="Lightning: the captain holds the course", extends="source", resolution="720p"),
    "edit": dict(prompt="Make it night, heavy rain", edits="source", duration=2, resolution="720p"),
}
TASKS = {"first_last_frame": "image_to_video"}
"""Shot name -> its Interactions task, where they differ (two images are what asks for interpolation)."""
CASES = [(surface, task) for surface in ("gemini", "vertex") for task in SHOTS]


def job_for(task: str, inputs: Inputs) -> RenderJob:
    fields = dict(SHOTS[task])
    for name in ("first_frame", "last_frame", "extends", "edits"):
        if name in fields:
            fields[name] = inputs.digest(fields[name])
    fields["references"] = tuple(inputs.digest(r) for r in fields.get("references", ()))
    return RenderJob(provider="omni", model=MODEL, **fields)


def ours(surface: str, task: str, inputs: Inputs, capture: Capture, tmp_path: Path) -> Request:
    env = {"GEMINI_API_KEY": KEY} if surface == "gemini" else {"VERTEX_ACCESS_TOKEN": TOKEN,
                                                               "GOOGLE_CLOUD_PROJECT": PROJECT}
    provider = OmniProvider(OmniSettings(platform=surface, base_url=capture.url), env=env, rng=random.Random(0))
    ctx = render_context(tmp_path, inputs={inputs.digest(n): p for n, p in inputs.paths.items()})
    try:
        provider.submit(job_for(task, inputs), ctx)
    finally:
        provider.close()
    return capture.take()


def sdk_call(task: str, inputs: Inputs) -> dict[str, Any]:
    """`interactions.create`'s arguments for the shot, as google-2026.md §1.3-1.4 writes it."""
    shot = SHOTS[task]
    media = [*(inputs.block(r) for r in shot.get("references", ())),
             *(inputs.block(shot[f]) for f in ("first_frame", "last_frame", "extends", "edits") if f in shot)]
    response_format: dict[str, Any] = {"type": "video", "resolution": shot["resolution"]}
    if task != "edit":  # an edit keeps its source's shape and length
        response_format["aspect_ratio"] = shot.get("aspect_ratio", "16:9")
        response_format["duration"] = "7s" if task == "extend" else f"{shot['duration']:g}s"
    generation_config: dict[str, Any] = {"video_config": {"task": TASKS.get(task, task)}}
    if "seed" in shot:
        generation_config["seed"] = shot["seed"]
    return dict(model=MODEL, input=[*media, {"type": "text", "text": shot["prompt"]}] if media else shot["prompt"],
                response_format=response_format, generation_config=generation_config, background=True, store=True)


def google(surface: str, task: str, inputs: Inputs, capture: Capture, sdk: dict[str, Any]) -> Request:
    sdk[surface].interactions.create(**sdk_call(task, inputs))
    return capture.take()


# ---- comparing --------------------------------------------------------------------------------------

def normalised(value: Any) -> Any:
    """`value` with every base64 `data` payload replaced by the length and digest of its bytes."""
    if isinstance(value, dict):
        return {k: (payload(v) if k == "data" and isinstance(v, str) else normalised(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def payload(text: str) -> str:
    data = base64.b64decode(text, validate=True)
    return f"<{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:16]}>"


def differences(mine: Any, theirs: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any, Any]]:
    """(path, ours, the SDK's) for every leaf that differs in value or JSON type; key order is ignored."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        for key in sorted(mine.keys() | theirs.keys()):
            yield from differences(mine.get(key, "<absent>"), theirs.get(key, "<absent>"), (*at, key))
    elif isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
        for index, (a, b) in enumerate(zip(mine, theirs)):
            yield from differences(a, b, (*at, index))
    elif mine != theirs or type(mine) is not type(theirs):
        yield at, mine, theirs


def interactions_path(surface: str) -> str:
    return "/v1beta/interactions" if surface == "gemini" else \
        f"/v1beta1/projects/{PROJECT}/locations/global/interactions"


@pytest.mark.parametrize("surface, task", CASES, ids=[f"{s}-{t}" for s, t in CASES])
def test_the_create_body_matches_googles_sdk(surface, task, inputs, capture, sdk, tmp_path):
    mine = ours(surface, task, inputs, capture, tmp_path)
    theirs = google(surface, task, inputs, capture, sdk)

    assert list(differences(normalised(mine.json), normalised(theirs.json))) == []
    assert mine.json["generation_config"]["video_config"]["task"] == TASKS.get(task, task)  # the task meant
    assert mine.path == theirs.path == interactions_path(surface)
    assert mine.query == theirs.query == {}
    if surface == "gemini":
        assert mine.headers["x-goog-api-key"] == theirs.headers["x-goog-api-key"] == KEY
        assert "authorization" not in mine.header_dict()
    else:
        assert mine.headers["authorization"] == theirs.headers["authorization"] == f"Bearer {TOKEN}"
        assert "x-goog-api-key" not in mine.header_dict()


@pytest.mark.parametrize("surface", ["gemini", "vertex"])
def test_polling_matches_googles_sdk(surface, inputs, capture, sdk, tmp_path):
    env = {"GEMINI_API_KEY": KEY} if surface == "gemini" else {"VERTEX_ACCESS_TOKEN": TOKEN,
                                                               "GOOGLE_CLOUD_PROJECT": PROJECT}
    provider = OmniProvider(OmniSettings(platform=surface, base_url=capture.url), env=env, rng=random.Random(0))
    job = job_for("text_to_video", inputs)
    try:
        assert provider.poll("v1_parity0", job, render_context(tmp_path)) == (None, None)  # still running
    finally:
        provider.close()
    mine = capture.take()
    sdk[surface].interactions.get("v1_parity0")
    theirs = capture.take()

    assert (mine.method, mine.path, mine.raw) == (theirs.method, theirs.path, theirs.raw) \
        == ("GET", f"{interactions_path(surface)}/v1_parity0", b"")
    assert (mine.query, theirs.query) == POLL_QUERIES


def test_the_comparison_sees_a_wrong_value_a_wrong_type_and_a_missing_field():
    sdk_body = {"input": [{"type": "user_input", "content": [{"type": "text", "text": "p"}]}],
                "response_format": {"type": "video", "duration": "6s"}, "store": True}
    wrong = {"input": [{"type": "user_input", "content": [{"type": "text", "text": "q"}]}],
             "response_format": {"type": "video", "duration": 6}}
    assert list(differences(wrong, sdk_body)) == [
        (("input", 0, "content", 0, "text"), "q", "p"), (("response_format", "duration"), 6, "6s"),
        (("store",), "<absent>", True)]
    one, two = ({"data": base64.b64encode(data).decode()} for data in (b"one", b"two"))
    assert normalised(one) == normalised(dict(one)) != normalised(two)
