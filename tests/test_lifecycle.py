"""Model lifecycle: shut-down models fail validation (exit 2), retiring ones warn, Google's 404 is explained."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from storyboard import lifecycle
from storyboard.errors import ProviderError, StoryboardFileError
from storyboard.job import RenderJob
from storyboard.load import load
from storyboard.providers import BUILTIN, ProviderSettings
from storyboard.providers.gemini import GeminiProvider
from storyboard.providers.settings import validate_settings
from tests._cli import clean_env
from tests._cli import storyboard as run_storyboard
from tests.fakes import render_context
from tests.fakes.google_server import FakeGoogle, google_fake, google_server  # noqa: F401

SHUT_DOWN = ("gemini: model 'veo-3.1-generate-preview' was shut down on 2026-10-22; use provider \"vertex\" "
             "(veo-3.1-generate-001) or provider \"omni\" (gemini-omni-1.2-flash)")


def board(tmp_path: Path, table: str = "", model: str | None = None, provider: str = "gemini") -> Path:
    path = tmp_path / "storyboard.toml"
    line = f'model = "{model}"\n' if model else ""
    path.write_text(f'[film]\nprovider = "{provider}"\nduration = 8\n{line}\n{table}\n'
                    '[[shot]]\nid = "pier"\nprompt = "waves against the pier"\n')
    return path


def storyboard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_storyboard(*args, env=clean_env(**(env or {})), timeout=120)


# ---- the table ----------------------------------------------------------------------------------


def test_every_row_is_well_formed_and_every_replacement_is_itself_current():
    rows = lifecycle.table()
    assert len(rows) >= 20
    for (provider, model), info in rows.items():
        assert info.status in ("preview", "ga", "retired"), (provider, model)
        assert info.source, f"{provider}/{model} says where its facts come from"
        if info.status == "retired":
            assert info.retires is not None and info.replacements, (provider, model)
        for sub in info.replacements:
            target = rows.get(sub)
            assert target is not None and not target.retired(date(2026, 12, 1)), f"{model} -> {sub}"


def test_the_table_knows_every_builtin_providers_default_model():
    from storyboard.providers import provider_class

    for name in BUILTIN:
        cls = provider_class(name)
        assert lifecycle.lookup(name, cls.default_model) is not None, name


def test_the_dates_come_from_the_google_reference():
    for model in ("veo-3.1-generate-preview", "veo-3.1-fast-generate-preview", "veo-3.1-lite-generate-preview"):
        info = lifecycle.lookup("gemini", model)
        assert info.retires == date(2026, 10, 22) and info.retired(date(2026, 10, 22))
    assert lifecycle.lookup("vertex", "veo-3.1-generate-001").status == "ga"
    assert lifecycle.lookup("omni", "gemini-omni-1.2-flash").status == "ga"
    assert lifecycle.lookup("omni", "gemini-omni-1.1-flash").status == "ga"


# ---- validation -------------------------------------------------------------------------------


def test_a_shot_on_a_shut_down_model_is_a_validation_error_naming_date_and_replacement(tmp_path):
    with pytest.raises(StoryboardFileError) as info:
        load(board(tmp_path))  # the gemini provider's default model is the retired preview
    assert SHUT_DOWN in info.value.message
    assert "shot 'pier'" in info.value.message and "allow_retired = true in [providers.gemini]" in info.value.message


def test_validate_and_build_exit_2_before_anything_runs(tmp_path, google_fake):  # noqa: F811
    path = board(tmp_path, model="veo-3.1-fast-generate-preview")
    env = {"GEMINI_API_KEY": "k", "STORYBOARD_GEMINI_BASE_URL": google_fake.url}
    for command in ("validate", "build"):
        result = storyboard(command, str(path), env=env)
        assert result.returncode == 2, result.stderr
        assert "was shut down on 2026-10-22; use provider \"vertex\" (veo-3.1-fast-generate-001)" in result.stderr
        assert "Traceback" not in result.stderr
    assert google_fake.count("submit") == 0


def test_allow_retired_turns_the_error_into_a_plan_warning(tmp_path):
    path = board(tmp_path, "[providers.gemini]\nallow_retired = true\n")
    assert load(path).shots["pier"].model == "veo-3.1-generate-preview"
    result = storyboard("plan", str(path), "--json", env={"GEMINI_API_KEY": "k"})
    assert result.returncode == 0, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert any(p.startswith("warning: shot pier: " + SHUT_DOWN) and "allow_retired = true" in p for p in problems)
    table = storyboard("plan", str(path), env={"GEMINI_API_KEY": "k"})
    assert "warning: shot pier: gemini: model 'veo-3.1-generate-preview' was shut down" in table.stdout


def test_allow_retired_is_in_the_schema_and_typed():
    from storyboard.schema import schema_json

    assert "allow_retired" in schema_json()
    with pytest.raises(ValueError):  # a [providers.NAME] table is checked; the dataclass itself is not
        validate_settings(ProviderSettings, {"allow_retired": "sometimes"})


def test_a_current_or_unknown_model_passes(tmp_path):
    assert load(board(tmp_path, provider="vertex")).shots["pier"].model == "veo-3.1-generate-001"
    assert lifecycle.check("gemini", "my-proxy-model", None) is None


def test_a_model_within_30_days_of_its_shutdown_is_a_warning():
    shots = [SimpleNamespace(id="a", provider="vertex", model="gemini-omni-flash-preview"),
             SimpleNamespace(id="b", provider="vertex", model="gemini-omni-flash-preview"),
             SimpleNamespace(id="c", provider="vertex", model="veo-3.1-generate-001")]
    soon = lifecycle.warnings(shots, {}, today=date(2027, 6, 10))
    assert soon == ["warning: shots a, b: vertex: model 'gemini-omni-flash-preview' is announced to shut down on "
                    "2027-06-30 (in 20 days); use provider \"vertex\" (gemini-omni-1.2-flash)"]
    assert lifecycle.warnings(shots, {}, today=date(2027, 5, 30)) == []
    assert lifecycle.check("vertex", "gemini-omni-flash-preview", None, today=date(2027, 6, 29)) is None
    assert "shut down on 2027-06-30" in lifecycle.check("vertex", "gemini-omni-flash-preview", None,
                                                       today=date(2027, 6, 30))


# ---- run time -----------------------------------------------------------------------------------


def test_googles_404_no_longer_available_maps_to_the_same_message(tmp_path, google_fake):  # noqa: F811
    google_fake.fail("submit", 404, message="This model models/veo-3.1-generate-preview is no longer available. "
                                            "Please update your code to use models/gemini-omni-1.1-flash.")
    provider = GeminiProvider(ProviderSettings(base_url=google_fake.url, poll_interval=0.01, allow_retired=True),
                              env={"GEMINI_API_KEY": google_fake.api_key}, rng=random.Random(0))
    job = RenderJob(provider="gemini", model="veo-3.1-generate-preview", prompt="a pier", duration=4)
    ctx = render_context(tmp_path, shot_id="pier")
    try:
        with pytest.raises(ProviderError) as info:
            provider.render(job, tmp_path / "out.mp4", ctx)
    finally:
        provider.close()
    assert info.value.message.startswith(f"shot 'pier': {SHUT_DOWN}")
    assert google_fake.count("submit") == 1 and ctx.journal.read() is None
