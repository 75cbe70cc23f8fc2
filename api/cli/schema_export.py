"""Export the definition format's JSON Schema: `python -m api.cli.schema_export`.

The file in docs/ is what editors and other tools validate against; a test keeps it in sync
with the pydantic models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workflows.definition import definition_json_schema

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "workflow-definition.schema.json"


def render() -> str:
    return json.dumps(definition_json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {SCHEMA_PATH}\n")


if __name__ == "__main__":
    main()
