"""Definition validation: every problem answered with its JSON path; the exported schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from api.cli.schema_export import SCHEMA_PATH, render
from workflows.errors import DefinitionError
from workflows.kinds.common import effective_retry, effective_timeout
from workflows.validation import check_definition, load_definition

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

TRIAGE: dict[str, Any] = {
    "id": "ticket-triage",
    "name": "Support ticket triage",
    "inputs": {
        "type": "object",
        "required": ["ticket"],
        "properties": {"ticket": {"type": "object"}},
    },
    "timeout_seconds": 600,
    "defaults": {"timeout_seconds": 30, "retry": {"max_attempts": 3}},
    "steps": [
        {
            "id": "classify",
            "type": "ai",
            "model": "openai/gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Answer in JSON."},
                {"role": "user", "content": "Subject: {ticket.subject}\n{ticket.body}"},
            ],
            "response_format": {
                "type": "json_schema",
                "schema": {
                    "type": "object",
                    "properties": {"priority": {"enum": ["low", "high"]}},
                    "required": ["priority"],
                },
            },
            "output": "classification",
            "timeout_seconds": 60,
            "retry": {"max_attempts": 5},
        },
        {
            "id": "route",
            "type": "condition",
            "branches": [{"when": "classification.json.priority == 'high'", "next": "page"}],
            "default": "reply",
        },
        {
            "id": "page",
            "type": "http",
            "method": "POST",
            "url": "https://hooks.example.com/page",
            "json": {"text": "High priority: {ticket.subject}"},
            "output": "page_response",
            "next": "end",
        },
        {"id": "reply", "type": "set", "values": {"reply": "Thanks {ticket.customer.name}"}},
    ],
}


def problems_of(document: Any) -> list[tuple[str, str, str]]:
    _, problems = check_definition(document)
    return [(p.path, p.code, p.message) for p in problems]


def mutate(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(TRIAGE)
    for dotted, value in changes.items():
        target: Any = document
        parts = dotted.split("__")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return document


_DELETE = object()


def test_spec_example_is_valid() -> None:
    assert problems_of(TRIAGE) == []


@pytest.mark.parametrize(
    ("changes", "path", "code", "words"),
    [
        (
            {"steps__0__type": "aii"},
            "$.steps[0].type",
            "invalid_definition",
            "unknown step type 'aii'",
        ),
        ({"steps__3__type": _DELETE}, "$.steps[3].type", "invalid_definition", "missing 'type'"),
        ({"steps__2__url": 5}, "$.steps[2].url", "invalid_definition", "valid string"),
        ({"steps__2__colour": "red"}, "$.steps[2].colour", "invalid_definition", "unknown field"),
        (
            {"steps__3__on_error": "explode"},
            "$.steps[3].on_error",
            "invalid_definition",
            "on_error must be",
        ),
        (
            {"steps__3__id": "page"},
            "$.steps[3].id",
            "duplicate_step_id",
            "duplicate step id 'page'",
        ),
        (
            {"steps__2__next": "nowhere"},
            "$.steps[2].next",
            "unknown_next",
            "unknown step 'nowhere'",
        ),
        (
            {"steps__1__branches__0__when": "a =="},
            "$.steps[1].branches[0].when",
            "invalid_condition",
            "invalid CEL",
        ),
        (
            {"steps__2__json": {"t": "{nope.x}"}},
            "$.steps[2].json.t",
            "unknown_reference",
            "'{nope.x}'",
        ),
        (
            {"steps__3__values": {"r": "{secrets.X}"}},
            "$.steps[3].values.r",
            "invalid_reference",
            "only be used in ai and http",
        ),
        (
            {"steps__0__retry": {"max_attempts": 0}},
            "$.steps[0].retry.max_attempts",
            "invalid_definition",
            "greater than or equal to 1",
        ),
        (
            {"steps__0__prompt": "also"},
            "$.steps[0]",
            "invalid_definition",
            "exactly one of 'messages' or 'prompt'",
        ),
        (
            {"inputs": {"type": "objekt"}},
            "$.inputs.type",
            "invalid_definition",
            "not a valid JSON Schema",
        ),
        ({"id": "bad id!"}, "$.id", "invalid_definition", ""),
        ({"steps": []}, "$.steps", "invalid_definition", "at least 1"),
    ],
)
def test_each_problem_has_its_path(
    changes: dict[str, Any], path: str, code: str, words: str
) -> None:
    found = problems_of(mutate(**changes))
    assert any(p == path and c == code and words in m for p, c, m in found), found


def test_problem_messages_name_the_step() -> None:
    found = problems_of(mutate(steps__2__url=5))
    assert any("step 'page'" in m for _, _, m in found)


def test_unreachable_step_is_reported() -> None:
    document = mutate(steps__3__next="end")
    document["steps"].append({"id": "orphan", "type": "set", "values": {"a": 1}})
    assert ("$.steps[4]", "unreachable_step") in [(p, c) for p, c, _ in problems_of(document)]


def test_loop_without_exit_is_reported_and_bounded_loop_accepted() -> None:
    looping = {
        "id": "loop",
        "steps": [
            {"id": "a", "type": "set", "values": {"i": 1}},
            {"id": "b", "type": "set", "values": {"j": 2}, "next": "a"},
        ],
    }
    assert [c for _, c, _ in problems_of(looping)] == ["unbounded_loop"]
    bounded = {
        "id": "loop",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "steps": [
            {"id": "init", "type": "set", "values": {"i": 0}},
            {"id": "check", "type": "condition", "branches": [{"when": "i >= n", "next": "end"}]},
            {"id": "inc", "type": "set", "values": {"i": "{i}"}, "next": "check"},
        ],
    }
    assert problems_of(bounded) == []


def test_reference_to_a_later_output_is_rejected_but_earlier_is_fine() -> None:
    document = {
        "id": "order",
        "steps": [
            {"id": "use", "type": "set", "values": {"x": "{later}"}},
            {"id": "make", "type": "set", "values": {"later": 1}},
        ],
    }
    assert [c for _, c, _ in problems_of(document)] == ["unknown_reference"]
    document["steps"].reverse()
    assert problems_of(document) == []


def test_condition_variables_are_checked_but_macro_variables_are_not() -> None:
    document = {
        "id": "cel",
        "inputs": {"type": "object", "properties": {"items": {"type": "array"}}},
        "steps": [
            {
                "id": "c",
                "type": "condition",
                "branches": [{"when": "items.exists(x, x > 2) && missing == 1", "next": "end"}],
            }
        ],
    }
    found = problems_of(document)
    assert len(found) == 1 and "missing" in found[0][2]


def test_every_problem_is_reported_at_once() -> None:
    document = mutate(steps__2__next="nowhere", steps__3__id="page")
    assert len(problems_of(document)) >= 2


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "x",
        1,
        {"steps": "no"},
        {"id": 1, "steps": [None]},
        {"id": 1, "steps": [{"type": 5}]},
    ],
)
def test_garbage_is_a_problem_not_a_crash(document: Any) -> None:
    assert problems_of(document)


def test_deep_nesting_and_many_steps_do_not_recurse() -> None:
    deep: Any = {}
    for _ in range(10_000):
        deep = {"x": deep}
    assert problems_of({"id": "deep", "steps": [{"id": "s", "type": "set", "values": deep}]})
    many = {
        "id": "many",
        "steps": [{"id": f"s{i}", "type": "set", "values": {f"v{i}": i}} for i in range(5_000)],
    }
    assert problems_of(many) == []


def test_load_definition_raises_with_all_problems() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_definition(mutate(steps__2__next="nowhere"))
    assert caught.value.problems[0].path == "$.steps[2].next"


def test_retry_and_timeout_layering() -> None:
    definition = load_definition(TRIAGE)
    classify = definition.steps[0]
    assert effective_timeout(classify, definition.defaults).total_seconds() == 60  # type: ignore[arg-type]
    retry = effective_retry(classify, definition.defaults)  # type: ignore[arg-type]
    assert retry.max_attempts == 5  # the step wins
    assert retry.initial_interval_seconds == 1.0  # engine default fills the gap
    page = definition.steps[2]
    assert effective_retry(page, definition.defaults).max_attempts == 3  # type: ignore[arg-type]
    assert effective_timeout(page, definition.defaults).total_seconds() == 30  # type: ignore[arg-type]


def test_exported_schema_is_in_sync_with_the_models() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), (
        "docs/workflow-definition.schema.json is stale: run `python -m api.cli.schema_export`"
    )


def test_exported_schema_accepts_the_examples_and_rejects_unknown_types() -> None:
    validator = Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    validator.validate(TRIAGE)
    for path in sorted(EXAMPLES.glob("*.json")):
        validator.validate(json.loads(path.read_text(encoding="utf-8")))
    assert not validator.is_valid(mutate(steps__0__type="nope"))


def test_names_after_a_step_that_binds_nothing_are_still_known() -> None:
    document = {
        "id": "flow",
        "steps": [
            {"id": "wait", "type": "delay", "seconds": 1},
            {"id": "one", "type": "set", "values": {"v": 1}},
            {"id": "two", "type": "set", "values": {"w": "{v}"}},
        ],
    }
    assert problems_of(document) == []


def test_every_failure_type_is_documented() -> None:
    """docs/errors.md lists the names on_error rules route on: all of them."""
    from pathlib import Path

    from workflows.errors import FailureType

    doc = (Path(__file__).resolve().parent.parent / "docs" / "errors.md").read_text()
    assert [t.value for t in FailureType if f"`{t.value}`" not in doc] == []
