"""The README's providers section leads with Google's current roads and shows the ADC set-up as it works."""

from __future__ import annotations

import re
from pathlib import Path

from storyboard.providers import BUILTIN

README = Path(__file__).resolve().parents[2] / "README.md"


def providers_section() -> str:
    return README.read_text().split("\n## Providers\n", 1)[1].split("\n## ", 1)[0]


def test_the_providers_table_leads_with_vertex_and_omni_and_lists_every_builtin():
    section = providers_section()
    table = section.split("| provider | what |", 1)[1].split("\n\n", 1)[0]
    names = re.findall(r"^\| `([a-z]+)` \|", table, re.M)
    assert names[:2] == ["vertex", "omni"] and sorted(names) == sorted(BUILTIN)


def test_the_adc_set_up_is_three_commands_naming_a_project():
    section = providers_section()
    [block] = [b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "application-default" in b]
    commands = [line.split("  #")[0].strip() for line in block.strip().splitlines()]
    assert len(commands) == 3
    assert commands[0] == "gcloud auth application-default login"
    assert "GOOGLE_CLOUD_PROJECT=" in commands[2] and commands[2].split()[1:3] == ["storyboard", "build"]


def test_the_surface_table_says_where_veo_and_omni_are_served_today():
    section = providers_section()
    surfaces = section.split("| you want | Google serves it on | provider |", 1)[1].split("\n\n", 1)[0]
    rows = {re.match(r"\s*`([a-z]+)`", row.split("|")[3]).group(1): row for row in surfaces.strip().splitlines()[1:]}
    assert set(rows) == {"vertex", "omni", "gemini"}
    assert "shut down on 2026-10-22" in rows["gemini"] and "locations/global" in rows["omni"]
