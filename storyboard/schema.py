"""The JSON schema of storyboard files, generated from the pydantic models."""

from __future__ import annotations

import json


def schema_json() -> str:
    """The schema as stable, pretty JSON (what schemas/storyboard.schema.json holds)."""
    from storyboard.spec import StoryboardFile

    schema = StoryboardFile.model_json_schema()
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = "storyboard"
    schema["description"] = "A storyboard file for storyboard, make for AI films."
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
