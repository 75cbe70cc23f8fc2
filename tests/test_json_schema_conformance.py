"""The JSON-Schema-Test-Suite (draft 2020-12) through the engine's input path.

Every case of the vendored files (tests/conformance/json-schema-test-suite/: the required
files and optional/format's files for the formats the engine asserts) is answered as a run's
start answers it (api/server/executions/inputs.py: the schema checked at save, defaults filled,
the value checked, the undeclared-input rule) when the value is an object, and as a
``payload_schema`` or ``response_format`` check answers it (value_problems) otherwise. Each
answer is compared with the suite's and with plain jsonschema's (Draft202012Validator with a
FormatChecker): every difference must be one of the restrictions docs/inputs.md lists, with the
counts it gives.
Nothing is fetched: the suite's remote documents are not vendored, and both validators get a
registry that refuses every retrieval.
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import referencing.exceptions
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry

from workflows.formats import ASSERTED_FORMATS
from workflows.input_schema import schema_problems, value_problems
from workflows.run_inputs import checked_inputs

SUITE = Path(__file__).parent / "conformance" / "json-schema-test-suite" / "draft2020-12"
DOC = Path(__file__).parents[1] / "docs" / "inputs.md"


@dataclass(frozen=True)
class Case:
    file: str  # under draft2020-12/, e.g. "optional/format/email.json"
    group: str
    test: str
    schema: Any
    data: Any
    valid: bool


@dataclass(frozen=True)
class Answer:
    verdict: str  # "valid", "invalid", or "refused": the schema cannot be saved
    messages: tuple[str, ...]


def suite_cases() -> list[Case]:
    cases = []
    for path in sorted(SUITE.rglob("*.json")):
        name = path.relative_to(SUITE).as_posix()
        for group in json.loads(path.read_text(encoding="utf-8")):
            cases += [
                Case(name, group["description"], test["description"], group["schema"],
                     test["data"], test["valid"])
                for test in group["tests"]
            ]  # fmt: skip
    return cases


def engine(schema: Any, data: Any) -> Answer:
    """What the engine answers: a definition's `inputs` must be an object (pydantic refuses a
    boolean schema at save), then the check every path to a run applies (checked_inputs)."""
    if not isinstance(schema, dict):
        return Answer("refused", ("a schema must be a JSON object",))
    refused = schema_problems(schema, "$.inputs")
    if refused:
        return Answer("refused", tuple(p.message for p in refused))
    if isinstance(data, dict):
        messages = tuple(problem.message for problem in checked_inputs(schema, data)[1])
    else:
        messages = tuple(problem.message for problem in value_problems(schema, data))
    return Answer("invalid" if messages else "valid", messages)


def _refuse(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


def plain(schema: Any, data: Any) -> str:
    """Plain jsonschema's answer ("error" when a reference needs another document, or a
    pattern is one Python's ``re`` cannot compile)."""
    registry: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]
    validator = Draft202012Validator(schema, format_checker=FormatChecker(), registry=registry)
    try:
        return "valid" if validator.is_valid(data) else "invalid"
    except (referencing.exceptions.Unresolvable, re.error):
        return "error"


# The restrictions docs/inputs.md lists, each recognised by what the engine says.
RESTRICTIONS = {
    "remote document": "names another document",
    "other dialect": "only JSON Schema 2020-12 is supported",
    "boolean schema": "a schema must be a JSON object",
    "undeclared input": "is not an input of this workflow",
    "default checked": "the default does not satisfy its own schema",
    "format asserted": "is not a '",
}


def restriction(case: Case, answer: Answer) -> str | None:
    """Which documented restriction makes the engine answer differently, if any."""
    text = " ".join(answer.messages)
    found = [name for name, words in RESTRICTIONS.items() if words in text]
    if len(found) != 1:
        return None
    name = found[0]
    if name == "undeclared input" and (answer.verdict != "invalid" or not case.valid):
        return None
    if name == "format asserted" and case.file != "format.json":
        return None  # the format files expect assertion: a miss there is a bug
    return name


@lru_cache(maxsize=1)
def outcomes() -> tuple[tuple[Case, Answer, str], ...]:
    """Every case answered by the engine and by plain jsonschema (once per session)."""
    return tuple((case, engine(case.schema, case.data), plain(case.schema, case.data))
                 for case in suite_cases())  # fmt: skip


def expected_rows(deviations: dict[str, collections.Counter[str]]) -> list[str]:
    """The start of each row of docs/inputs.md's table (a "why" column follows)."""
    rows = []
    for name in RESTRICTIONS:
        files = deviations.get(name, collections.Counter())
        listed = ", ".join(f"{file}: {count}" for file, count in sorted(files.items()))
        rows.append(f"| {name} | {sum(files.values())} | {listed or 'none'} |")
    return rows


def test_the_suite_through_the_engine_differs_only_by_documented_restrictions() -> None:
    results = outcomes()
    required = [r for r in results if not r[0].file.startswith("optional/")]
    formats = [r for r in results if r[0].file.startswith("optional/format/")]
    assert len(required) + len(formats) == len(results)
    # The format files vendored are exactly the formats asserted.
    assert {Path(r[0].file).stem for r in formats} == set(ASSERTED_FORMATS)

    deviations: dict[str, collections.Counter[str]] = {}
    unexplained = []
    for case, answer, _ in results:
        if answer.verdict == ("valid" if case.valid else "invalid"):
            continue
        name = restriction(case, answer)
        if name is None:
            unexplained.append((case.file, case.group, case.test, answer))
        else:
            deviations.setdefault(name, collections.Counter())[case.file] += 1
    assert unexplained == []

    agree = len(results) - sum(sum(files.values()) for files in deviations.values())
    figures = (
        f"{len(results)} cases ({len(required)} from the required files, {len(formats)} from "
        f"optional/format); the engine answers {agree} as the suite does"
    )
    doc = DOC.read_text(encoding="utf-8")
    assert figures in " ".join(doc.split()), f"docs/inputs.md should say: {figures}"
    lines = doc.splitlines()
    for row in expected_rows(deviations):
        assert any(line.startswith(row) for line in lines), f"docs/inputs.md lacks: {row}"


def test_the_format_files_pass_whole() -> None:
    for case, answer, _ in outcomes():
        if case.file.startswith("optional/format/"):
            assert answer.verdict == ("valid" if case.valid else "invalid"), (case, answer)


def test_where_plain_jsonschema_answers_otherwise_it_is_a_restriction_or_its_own_miss() -> None:
    """Plain jsonschema with its FormatChecker, on the same cases: where its answer and the
    engine's differ, either the engine's is a documented restriction, or jsonschema's own
    answer is not the suite's (a remote document it cannot load either; its "contains an @"
    email check; a format it checks only with an optional package installed)."""
    for case, answer, theirs in outcomes():
        if answer.verdict == theirs:
            continue
        engine_right = answer.verdict == ("valid" if case.valid else "invalid")
        theirs_right = theirs == ("valid" if case.valid else "invalid")
        assert restriction(case, answer) is not None or (engine_right and not theirs_right), (
            case,
            answer,
            theirs,
        )
