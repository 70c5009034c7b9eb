"""The cache key's components, made by hand for speed, are exactly pydantic's JSON dump of the job."""

from __future__ import annotations

import itertools
import json

from storyboard.cache import cache_key
from storyboard.job import RenderJob, key_components

VARIANTS = {
    "negative_prompt": [None, "no text", ""],
    "duration": [8, 4.5, 6],
    "seed": [None, 0, 4_294_967_295],
    "audio": [True, False],
    "first_frame": [None, "a" * 64],
    "references": [(), ("b" * 64,), ("c" * 64, "d" * 64)],
    "extends": [None, "e" * 64],
    "edits": [None, "f" * 64],
    "options": [(), (("storage_uri", "gs://x"),), (("person_generation", "allow_adult"), ("steps", 30),
                                                   ("strength", 0.5), ("enhance", True))],
    "label": ["", "s01"],
    "candidate": [1, 3],
    "batch": [0, 2],
}


def jobs():
    names = list(VARIANTS)
    for i, values in enumerate(itertools.product(*VARIANTS.values())):
        if i % 7:  # a seventh of the 31,104 combinations: every value of every field among them
            continue
        yield RenderJob(provider="veo", model="veo-3.1", prompt=f"a fox {i}", **dict(zip(names, values)))


def test_components_are_pydantics_json_dump_for_every_kind_of_value() -> None:
    count = 0
    for job in jobs():
        made = key_components(job)
        assert made == job.model_dump(mode="json")
        assert json.dumps(made, sort_keys=True) == json.dumps(job.model_dump(mode="json"), sort_keys=True)
        assert cache_key(made) == cache_key(job.model_dump(mode="json"))
        count += 1
    assert count == 4444


def test_the_same_for_jobs_made_without_validation_as_plan_makes_them() -> None:
    job = RenderJob.model_construct(provider="animatic", model="animatic-1", prompt="p", negative_prompt=None,
                                    duration=8, resolution="720p", aspect_ratio="16:9", seed=None, audio=True,
                                    take=2, first_frame=None, last_frame=None, references=(), extends=None,
                                    edits=None, options=(("seed_style", "x"),), label="s1", candidate=1, batch=0)
    assert key_components(job) == job.model_dump(mode="json")
    assert "options" in key_components(job) and "edits" not in key_components(job)


def test_a_value_json_cannot_hold_plainly_takes_pydantics_way() -> None:
    job = RenderJob.model_construct(**{**RenderJob(provider="p", model="m", prompt="x").__dict__,
                                       "duration": float("inf"), "options": (("strength", float("nan")),)})
    assert key_components(job) == job.model_dump(mode="json")
    assert key_components(job)["duration"] is None  # pydantic's JSON mode: inf is null


def test_a_job_constructed_from_every_field_is_pydantics_model_construct() -> None:
    from storyboard.job import construct_job

    for job in list(jobs())[:300]:
        values = dict(job.__dict__)
        made, theirs = construct_job(**values), RenderJob.model_construct(**values)
        assert made == theirs and hash(made) == hash(theirs)
        assert list(made.__dict__.items()) == list(theirs.__dict__.items())
        assert made.model_fields_set == theirs.model_fields_set
        assert made.model_dump(mode="json") == theirs.model_dump(mode="json") == key_components(made)
    partial = construct_job(provider="p", model="m", prompt="x")  # not every field: pydantic's way
    assert partial.model_fields_set == {"provider", "model", "prompt"} and partial.duration == 8
