"""Provider settings: plain dataclasses at load, pydantic's checks (and words) only for a table."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from storyboard.errors import StoryboardError, StoryboardFileError
from storyboard.load import load
from storyboard.providers import BUILTIN, ProviderSettings, provider_class
from storyboard.providers.animatic import AnimaticProvider
from storyboard.providers.settings import Check, _adapter, _plain, settings_fields, validate_settings
from storyboard.providers.uniall import UniAllSettings
from storyboard.providers.vertex import VertexOptions, VertexSettings

AUDIT = """
import builtins, json, sys
importers = set()
real_import = builtins.__import__

def audit(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if name.split(".")[0] in ("pydantic", "pydantic_core") and not importer.startswith(("pydantic", "typing")):
        importers.add(importer)
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = audit
import storyboard.providers
import storyboard.providers.animatic
from storyboard.providers import ProviderSettings, load_provider
from storyboard.providers.animatic import AnimaticProvider

class Plugin:  # what a plugin (and benchmarks/noop_build.py) does
    Settings = ProviderSettings
    def __init__(self, settings=None, **kwargs):
        self.settings = settings

AnimaticProvider(AnimaticProvider.Settings())
Plugin(Plugin.Settings())
load_provider("animatic")
print(json.dumps({"importers": sorted(importers), "loaded": "pydantic" in sys.modules}))
"""


def test_loading_a_provider_with_its_default_settings_imports_no_pydantic():
    done = subprocess.run([sys.executable, "-c", AUDIT], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # storyboard.job (RenderJob) is leaving pydantic in its own change; nothing else may import it
    assert set(seen["importers"]) <= {"storyboard.job"}, seen
    if not seen["importers"]:
        assert not seen["loaded"], seen


def test_settings_are_frozen_dataclasses_with_their_defaults():
    settings = VertexSettings(project="p")
    assert dataclasses.is_dataclass(settings) and settings.sample_count == 1 and settings.storage_uri is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.project = "q"  # type: ignore[misc]
    assert dataclasses.replace(settings, location="eu").location == "eu"
    assert UniAllSettings().storage_options == {} and UniAllSettings().storage_options is not \
        UniAllSettings().storage_options
    assert AnimaticProvider(AnimaticProvider.Settings()).settings == ProviderSettings()


def test_a_table_is_validated_into_the_dataclass():
    settings = validate_settings(VertexSettings, {"project": "p", "concurrency": "3", "rpm": 5,
                                                  "storage_uri": "gs://films/out/"})
    assert type(settings) is VertexSettings
    assert (settings.concurrency, settings.rpm, settings.storage_uri) == (3, 5.0, "gs://films/out/")
    assert settings_fields(ProviderSettings) == ["model", "base_url", "concurrency", "rpm", "poll_interval",
                                                 "timeout", "allow_retired"]
    assert {"project", "sample_count", "storage_uri", "allow_retired"} <= set(settings_fields(VertexSettings))
    assert "image_to_video_only" not in settings_fields(VertexOptions)  # a ClassVar, not an option


def test_errors_read_as_a_pydantic_models_did():
    with pytest.raises(ValidationError) as info:
        validate_settings(VertexSettings, {"projct": "q", "sample_count": 9, "person_generation": "everyone"})
    errors = [(e["type"], e["loc"], e["msg"]) for e in info.value.errors()]
    assert errors == [
        ("literal_error", ("person_generation",), "Input should be 'allow_adult', 'dont_allow' or 'allow_all'"),
        ("value_error", ("sample_count",), "Value error, 9 is out of range: Vertex returns 1 to 4 videos a request"),
        ("extra_forbidden", ("projct",), "Extra inputs are not permitted"),
    ]
    assert "Extra inputs are not permitted [type=extra_forbidden" in str(info.value)


def test_a_rule_sees_the_fields_before_it_and_runs_on_defaults():
    with pytest.raises(ValidationError, match="set both upload") as info:
        validate_settings(UniAllSettings, {"upload": "s3://b/p"})  # public_url left at its default
    assert info.value.errors()[0]["loc"] == ("public_url",)
    both = validate_settings(UniAllSettings, {"upload": "s3://b/p", "public_url": "https://b/{key}"})
    assert both.public_url == "https://b/{key}"


def test_a_plugins_own_settings_dataclass_and_a_pydantic_model_both_validate():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class LatencySettings(ProviderSettings):
        latency: float = 1.0

    assert validate_settings(LatencySettings, {"latency": "2.5", "rpm": 3}) == LatencySettings(latency=2.5, rpm=3)
    with pytest.raises(ValidationError, match="latncy"):
        validate_settings(LatencySettings, {"latncy": 2})

    class Undecorated(ProviderSettings):
        latency: float = 1.0

    with pytest.raises(StoryboardError, match="Undecorated extends a settings dataclass but is not one"):
        validate_settings(Undecorated, {"latency": 2})

    class OldStyle(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")
        latency: float = 1.0

    assert validate_settings(OldStyle, {"latency": 2}).latency == 2.0 and settings_fields(OldStyle) == ["latency"]


def _own_words(value: str) -> str:
    raise PydanticCustomError("not_a_hue", "{value} is not a hue on {wheel}", {"value": value, "wheel": "this wheel"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class HueSettings(ProviderSettings):
    hue: Annotated[str, Check(_own_words)] = "red"


def test_a_rules_own_error_kind_keeps_its_words_beside_an_unknown_key():
    with pytest.raises(ValidationError) as info:
        validate_settings(HueSettings, {"hue": "loud", "hu": 1})
    assert [(e["type"], e["loc"], e["msg"]) for e in info.value.errors()] == [
        ("not_a_hue", ("hue",), "loud is not a hue on this wheel"),
        ("extra_forbidden", ("hu",), "Extra inputs are not permitted"),
    ]


SETTINGS = sorted({provider_class(name).Settings for name in BUILTIN} | {VertexOptions}, key=lambda c: c.__name__)
VALUES = ["p", "allow_all", "crop", "lossless", "gs://films/out/", "s3://x/", "url", "vertex", "", 0, 1, 2, 5, -3,
          2**60, 2.5, 1.0, float("inf"), True, False, None, [1], {"a": 1}]


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_a_table_read_without_pydantic_is_what_pydantic_reads(cls):
    """Every value of every field, one at a time: where the plain reading answers, pydantic agrees."""
    answered = 0
    for name in settings_fields(cls):
        for value in VALUES:
            plain = _plain(cls, {name: value})
            if plain is None:
                continue
            answered += 1
            assert plain == _adapter(cls).validate_python({name: value}), (name, value)
            assert type(getattr(plain, name)) is type(getattr(_adapter(cls).validate_python({name: value}), name))
    if cls is not UniAllSettings:  # its rule reads another field and runs on defaults: always pydantic's
        assert answered >= len(settings_fields(cls)), "the plain reading should answer the usual values"
    assert _plain(cls, {"no_such_key": 1}) is None


def test_what_pydantic_would_coerce_or_refuse_is_left_to_it():
    assert _plain(VertexSettings, {"concurrency": "3"}) is None and _plain(VertexSettings, {"concurrency": True}) is None
    assert _plain(VertexSettings, {"concurrency": 2.0}) is None and _plain(VertexSettings, {"sample_count": 2}) is None
    assert _plain(VertexSettings, {"storage_uri": "s3://x/"}) is None
    assert _plain(VertexSettings, {"rpm": 5}).rpm == 5.0 and _plain(UniAllSettings, {}) is None
    assert validate_settings(VertexSettings, {"concurrency": "3"}).concurrency == 3  # pydantic's lax reading


LOAD = AUDIT.split("import storyboard.providers\n")[0] + """
from storyboard.load import load
board = load(sys.argv[1])
print(json.dumps({"importers": sorted(importers), "loaded": "pydantic" in sys.modules,
                  "project": board.providers["vertex"].project}))
"""


def test_a_usual_table_and_shot_options_load_without_pydantic(tmp_path):
    path = board(tmp_path, 'project = "p"\nconcurrency = 2\nrpm = 5\nperson_generation = "allow_all"',
                 options='options = { compression_quality = "lossless", storage_uri = "gs://films/out/" }')
    done = subprocess.run([sys.executable, "-c", LOAD, str(path)], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["project"] == "p"
    assert set(seen["importers"]) <= {"storyboard.job"}, seen  # RenderJob is leaving pydantic in its own change
    if not seen["importers"]:
        assert not seen["loaded"], seen


# ---- the messages a user sees ------------------------------------------------------------------------

def board(tmp_path: Path, table: str, options: str = "", provider: str = "vertex") -> Path:
    path = tmp_path / "storyboard.toml"
    path.write_text(f'[film]\nprovider = "{provider}"\nduration = 4\n\n[[shot]]\nid = "a"\nprompt = "a pier"\n'
                    f"{options}\n\n[providers.{provider}]\n{table}\n")
    return path


def message(path: Path) -> str:
    with pytest.raises(StoryboardFileError) as info:
        load(path)
    return str(info.value)


@pytest.mark.parametrize("table, line, says", [
    ('project = "p"\nsample_count = 2', 12, "[providers.vertex]: Value error, 2 videos a request here would pay for 2 "
     "and keep one: set `takes = 2` on the shot instead, which keeps every candidate (sampleCount follows it) "
     "'sample_count'"),
    ('project = "p"\nstorage_urii = "gs://x/"', 12,
     "[providers.vertex]: unknown key 'storage_urii' (did you mean 'storage_uri'?)"),
    ('project = "p"\nstorage_uri = "s3://x/"', 12, "[providers.vertex]: Value error, 's3://x/' is not a Cloud "
     "Storage prefix: write it as gs://BUCKET/FOLDER/ 'storage_uri'"),
    ('project = "p"\nperson_generation = "everyone"', 12, "[providers.vertex]: Input should be 'allow_adult', "
     "'dont_allow' or 'allow_all' 'person_generation'"),
    ('project = "p"\nprojct = "q"\nsample_count = 9', 13,
     "[providers.vertex]: Value error, 9 is out of range: Vertex returns 1 to 4 videos a request 'sample_count'"),
])
def test_a_bad_vertex_table_says_what_it_said_before(tmp_path, table, line, says):
    """The messages main gave before the settings became dataclasses (captured at 5fcffe7)."""
    path = board(tmp_path, table)
    assert message(path) == f"{path}: line {line}: {says}"


def test_a_bad_uniall_table_and_a_bad_shot_option_say_what_they_said_before(tmp_path):
    path = board(tmp_path, 'upload = "s3://b/p"', provider="uniall")
    assert message(path) == (f'{path}: line 10: [providers.uniall]: Value error, set both upload = '
                             f'"s3://bucket/prefix" and public_url = "https://…/{{key}}", or neither \'public_url\'')
    path = board(tmp_path, 'project = "p"', options='options = { storage_uri = "gs:///x" }')
    assert message(path) == (f"{path}: line 8: shot 'a': field 'options.storage_uri': vertex: Value error, "
                             "'gs:///x' is not a Cloud Storage prefix: write it as gs://BUCKET/FOLDER/ (got 'gs:///x')")


def test_a_good_table_becomes_the_providers_settings(tmp_path):
    loaded = load(board(tmp_path, 'project = "p"\nconcurrency = 3\nperson_generation = "dont_allow"'))
    settings = loaded.providers["vertex"]
    assert type(settings) is VertexSettings
    assert (settings.project, settings.concurrency, settings.person_generation) == ("p", 3, "dont_allow")
