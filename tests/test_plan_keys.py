"""A RenderJob's cache key is the one it had as a pydantic model: every cached clip was keyed that way.

`OldRenderJob` below is RenderJob as it was (a pydantic model whose key material was its
`model_dump(mode="json")`, shaped by its `_dump` serializer), kept here frozen as the reference.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import random
import subprocess
import sys
import warnings
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from storyboard.cache import cache_key, canonical_json
from storyboard.job import UNKEYED_OPTIONS, RenderJob, key_components

INF, NAN = math.inf, math.nan


class OldRenderJob(BaseModel):
    """storyboard.job.RenderJob before it was a dataclass, as it was (the reference keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    model: str
    prompt: str
    negative_prompt: str | None = None
    duration: int | float = 8
    resolution: Literal["360p", "720p", "1080p", "4k"] = "720p"
    aspect_ratio: Literal["16:9", "9:16"] = "16:9"
    seed: int | None = None
    audio: bool = True
    take: int = 1
    first_frame: str | None = None
    last_frame: str | None = None
    references: tuple[str, ...] = ()
    extends: str | None = None
    edits: str | None = None
    options: tuple[tuple[str, str | int | float | bool], ...] = ()
    label: str = ""
    candidate: int = 1
    batch: int = 0

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        keyed = {name: value for name, value in self.options if name not in UNKEYED_OPTIONS}
        data.pop("options", None)
        if keyed:
            data["options"] = keyed
        if data.get("edits") is None:
            data.pop("edits", None)
        if data.get("candidate") == 1:
            data.pop("candidate", None)
        if data.get("batch") == 0:
            data.pop("batch", None)
        return data


VARIANTS: dict[str, list[Any]] = {
    "provider": ["veo", "omni"],
    "prompt": ["a fox", 'a "quoted" fox \\ backslash', "ünïcode fox ✓ 🎬", ""],
    "negative_prompt": [None, "no text", ""],
    "duration": [8, 4, 6, 4.5, 10 / 3, 7.25, INF, -INF, NAN],
    "resolution": ["360p", "720p", "1080p", "4k"],
    "aspect_ratio": ["16:9", "9:16"],
    "seed": [None, 0, 4_294_967_295],
    "audio": [True, False],
    "take": [1, 2, 7],
    "first_frame": [None, "a" * 64],
    "last_frame": [None, "9" * 64],
    "references": [(), ("b" * 64,), ("c" * 64, "d" * 64)],
    "extends": [None, "e" * 64],
    "edits": [None, "f" * 64],
    "options": [(), (("storage_uri", "gs://x"),),
                (("enhance", True), ("person_generation", "allow_adult"), ("steps", 30), ("strength", 0.5)),
                (("storage_uri", "gs://y"), ("strength", NAN)), (("cfg", INF), ("steps", -2), ("zoom", 0.0))],
    "label": ["", "s01", "ünï ✓"],
    "candidate": [1, 3, 16],
    "batch": [0, 2],
}
"""Every field but `model`, each value of each met among the generated jobs (defaults and not)."""


def generated() -> list[dict[str, Any]]:
    rng = random.Random(15)
    return [{"model": "veo-3.1", **{name: rng.choice(values) for name, values in VARIANTS.items()}}
            for _ in range(5000)]


def assert_same_key(values: dict[str, Any]) -> None:
    new, old = key_components(RenderJob(**values)), OldRenderJob.model_construct(**values).model_dump(mode="json")
    assert new == old
    assert canonical_json(new) == canonical_json(old)
    assert cache_key(new) == cache_key(old)


def test_every_generated_job_keys_as_the_pydantic_model_did() -> None:
    jobs = generated()
    for values in jobs:
        assert_same_key(values)
    for name, variants in VARIANTS.items():  # the jobs met every value of every field
        met = {repr(v[name]) for v in jobs}
        assert met == {repr(v) for v in variants}, name
    # both ways of key_components were taken: plain values, and the non-finite floats JSON writes as null
    made = [key_components(RenderJob(**values)) for values in jobs]
    assert all(c["duration"] is None for c, v in zip(made, jobs) if not math.isfinite(v["duration"]))
    assert {"strength": None} in [c.get("options") for c in made]
    assert sum(c["duration"] is None for c in made) > 1000 and sum(type(c["duration"]) is float for c in made) > 1000


def test_defaults_stay_out_of_the_key_as_before_they_existed() -> None:
    plain = key_components(RenderJob(provider="p", model="m", prompt="x", options=(("storage_uri", "gs://b"),)))
    assert set(plain) == {"provider", "model", "prompt", "negative_prompt", "duration", "resolution",
                          "aspect_ratio", "seed", "audio", "take", "first_frame", "last_frame", "references",
                          "extends", "label"}
    every = key_components(RenderJob(provider="p", model="m", prompt="x", edits="f" * 64, candidate=2, batch=1,
                                     options=(("steps", 3), ("storage_uri", "gs://b"))))
    assert {k: every[k] for k in ("edits", "candidate", "batch", "options")} == {
        "edits": "f" * 64, "candidate": 2, "batch": 1, "options": {"steps": 3}}


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Ratio(enum.Enum):
    HALF = 0.5


class Text(str):
    def __str__(self) -> str:
        return "not the value"


class Number(int):
    pass


class Real(float):
    pass


ODD = [
    {"prompt": Text("a fox")}, {"prompt": Colour.RED}, {"label": Colour.RED}, {"resolution": Text("720p")},
    {"edits": Text("f" * 64)}, {"negative_prompt": Colour.RED},
    {"duration": True}, {"duration": Number(4)}, {"duration": Real(4.5)}, {"duration": Real(INF)},
    {"duration": Level.HIGH}, {"seed": Level.HIGH}, {"seed": True}, {"take": True}, {"take": 2.0},
    {"candidate": True}, {"candidate": 1.0}, {"batch": False}, {"batch": Number(2)}, {"audio": 1},
    {"seed": 2**70}, {"references": ["b" * 64, Text("c" * 64)]}, {"references": ("b" * 64, Colour.RED)},
    {"options": [["steps", 3]]}, {"options": (("steps", (1, 2)),)}, {"options": (("a", {"k": (1, NAN)}),)},
    {"options": (("a", Colour.RED), ("b", Level.HIGH), ("c", Ratio.HALF), (Text("d"), Real(1.5)))},
    {"options": (("a", frozenset({1})),)}, {"options": ((Text("storage_uri"), INF),)},
    {"options": (("a", Number(5)), ("b", Real(-INF)))},
]
"""Values a validated shot never gives a job, each where the fast way must not take it."""


@pytest.mark.parametrize("odd", ODD, ids=lambda odd: f"{next(iter(odd))}={next(iter(odd.values()))!r}")
def test_a_value_that_is_not_plain_keys_as_pydantic_json_mode_wrote_it(odd: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns of values its field types do not expect
        assert_same_key({"provider": "p", "model": "m", "prompt": "x", **odd})
    components = key_components(RenderJob(**{"provider": "p", "model": "m", "prompt": "x", **odd}))
    json.dumps(components, allow_nan=False)  # plain JSON all through
    assert all(type(k) is str for k in components.get("options", {}))


def test_a_value_json_has_no_form_for_is_refused() -> None:
    with pytest.raises(TypeError, match="object"):
        key_components(RenderJob(provider="p", model="m", prompt="x", options=(("a", object()),)))


def test_the_job_has_the_models_fields_defaults_and_order_and_is_frozen() -> None:
    fields = dataclasses.fields(RenderJob)
    assert [f.name for f in fields] == list(OldRenderJob.model_fields)
    assert {f.name: f.default for f in fields if f.default is not dataclasses.MISSING} == {
        name: f.default for name, f in OldRenderJob.model_fields.items() if not f.is_required()}
    job = RenderJob(provider="p", model="m", prompt="x", references=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.prompt = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        RenderJob(provider="p", model="m", prompt="x", promt="typo")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RenderJob("p", "m", "x")  # type: ignore[misc]
    twin = dataclasses.replace(RenderJob(provider="p", model="m", prompt="x", references=("a",), candidate=2),
                               candidate=1)
    assert twin == job and hash(twin) == hash(job) and {job: 1}[twin] == 1
    assert job.output_seconds == 8.0 and isinstance(job.output_seconds, float)


def test_importing_the_job_does_not_import_pydantic() -> None:
    code = "import sys, storyboard.job; print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


BOARD = """
[film]
provider = "fake"
duration = 4
seed = 1

[[shot]]
id = "a"
prompt = "a lighthouse at dusk"

[[shot]]
id = "b"
continues = "a"
prompt = "the lamp comes on"
negative_prompt = "no text"

[[shot]]
id = "c"
prompt = "the sea at night"
duration = 6
takes = 2
pick = 2
take = 3
"""


def test_a_planned_board_keys_each_shot_as_the_pydantic_model_did(write_board, fake_provider) -> None:
    from storyboard.build import build, open_project, plan_project

    path = write_board(BOARD)
    build(open_project(path))
    steps, resolver = plan_project(open_project(path))
    assert {s.shot: s.status for s in steps} == {"a": "cached", "b": "cached", "c": "cached"}
    lock = json.loads(path.with_name("storyboard.lock").read_text())["shots"]
    for step in steps:
        assert step.key == cache_key(OldRenderJob.model_construct(**step.job.__dict__).model_dump(mode="json"))
        assert lock[step.shot]["key"] == step.key and lock[step.shot]["components"] == key_components(step.job)
    b = next(s for s in steps if s.shot == "b")
    assert b.job.first_frame and b.job.negative_prompt == "no text"
    c = next(s for s in steps if s.shot == "c")
    assert (c.job.candidate, c.job.take, c.job.duration) == (2, 3, 6)
    other = resolver.candidates(open_project(path).board.shots["c"], c.job)[0][1]  # candidate 1: a replace
    assert other.candidate == 1 and "candidate" not in key_components(other)
    assert resolver.key(other) == cache_key(OldRenderJob.model_construct(**other.__dict__).model_dump(mode="json"))


PINNED_BOARD = """
[film]
provider = "animatic"
duration = 4
seed = 1

[providers.vertex]
project = "fake-project"

[[shot]]
id = "plain"
prompt = "a lighthouse at dusk"

[[shot]]
id = "every-field"
prompt = "the lamp comes on, \\"quoted\\" and ünïcode ✓"
negative_prompt = "no text"
duration = 6
seed = 4294967295
audio = false
aspect_ratio = "9:16"
take = 3
takes = 2
pick = 2

[[shot]]
id = "vertex-options"
provider = "vertex"
model = "veo-3.1-generate-001"
prompt = "a harbour at night"
duration = 8
options = { person_generation = "allow_adult", compression_quality = "lossless" }

[[shot]]
id = "vertex-delivery"
provider = "vertex"
model = "veo-3.1-generate-001"
prompt = "a harbour at night"
duration = 8
options = { storage_uri = "gs://films/renders/" }
"""
PINNED_KEYS = {
    "plain": "c4dfe4f61de5f426558fb1578ee7a6040078afc672e75927bd31971e6df3f534",
    "every-field": "6bed5be74f0f96f403d9978307f7647b804384a8a45f8a37e13fd7d0df879870",
    "every-field candidate 1": "31e526d469d0758c182582970b1be4a717b4f6d09b6b9a095a4679385605910e",
    "vertex-options": "217c823962b1f2e23d9dcd0d1d188e5befcb31a5af5ab87573d3619e6d34660a",
    "vertex-delivery": "00ab8ca426eef5d3d8307bba509481006f9b7b51b45aa08e849d853fde3a88fb",
}
"""The keys 5fcffe7 planned for PINNED_BOARD (RenderJob a pydantic model, the board loaded by pydantic):
whatever makes a shot's job now (the loader, the provider's options), the keys must be these."""


def test_a_board_plans_the_keys_the_pydantic_job_planned(write_board, monkeypatch) -> None:
    from storyboard.build import open_project, plan_project

    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", "token")
    path = write_board(PINNED_BOARD)
    steps, resolver = plan_project(open_project(path))
    keys = {step.shot: step.key for step in steps}
    every = next(step for step in steps if step.shot == "every-field")
    keys["every-field candidate 1"] = resolver.candidates(open_project(path).board.shots["every-field"],
                                                          every.job)[0][2]
    assert keys == PINNED_KEYS
