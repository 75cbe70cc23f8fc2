"""Export the JSON Schemas of the definition format and of test files:
`python -m api.cli.schema_export`.

The file in docs/ is what editors and other tools validate against; a test keeps it in sync
with the pydantic models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workflows.definition import definition_json_schema
from workflows.testfile import CaseFile

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "workflow-definition.schema.json"
TEST_SCHEMA_PATH = SCHEMA_PATH.with_name("workflow-test.schema.json")


def render() -> str:
    return json.dumps(definition_json_schema(), indent=2, sort_keys=True) + "\n"


def render_tests() -> str:
    """The test file's schema (docs/testing.md)."""
    return json.dumps(CaseFile.model_json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    TEST_SCHEMA_PATH.write_text(render_tests(), encoding="utf-8")
    sys.stdout.write(f"wrote {SCHEMA_PATH}\nwrote {TEST_SCHEMA_PATH}\n")


if __name__ == "__main__":
    main()
