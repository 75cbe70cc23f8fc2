"""Typed save-time checks (docs/expressions.md "Types at save time"): what a definition says of
its values' types makes CEL expressions and whole-value references fail at save, with the
path, the operator and both types, only where they would fail whenever they run; and every
problem of a definition comes back in one answer."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from workflows.cel_ops import BINARY, FUNCTIONS, UNARY
from workflows.conditions import evaluate_expression
from workflows.errors import ConditionError
from workflows.validation import check_definition

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

INPUTS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "x": {"type": "number"},
        "s": {"type": "string"},
        "b": {"type": "boolean"},
        "l": {"type": "array", "items": {"type": "string"}},
        "nums": {"type": "array", "items": {"type": "integer"}},
        "order": {"type": "object", "properties": {"id": {"type": "string"}}},
        "strict": {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "additionalProperties": False,
        },
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "free": {},
        "maybe": {"type": ["string", "null"]},
        "level": {"enum": ["low", "high"]},
        "composed": {"allOf": [{"type": "integer"}]},
    },
}
FETCH = {"id": "fetch", "type": "http", "url": "https://example.com/a", "output": "r"}
ASK = {
    "id": "ask",
    "type": "ai",
    "model": "m",
    "prompt": "classify {s}",
    "output": "c",
    "response_format": {
        "type": "json_schema",
        "schema": {
            "type": "object",
            "properties": {"priority": {"enum": ["low", "high"]}, "score": {"type": "number"}},
            "required": ["priority"],
            "additionalProperties": False,
        },
    },
}
PLAIN_AI = {"id": "plain", "type": "ai", "model": "m", "prompt": "hi", "output": "answer"}
SIGNAL = {
    "id": "approve",
    "type": "wait_for_signal",
    "signal": "go",
    "output": "approval",
    "payload_schema": {
        "type": "object",
        "properties": {"approved": {"type": "boolean"}, "by": {"type": "string"}},
    },
}
AGENT = {
    "id": "research",
    "type": "agent",
    "model": "m",
    "prompt": "find out",
    "tools": [
        {"name": "look", "description": "look it up", "http": {"url": "https://example.com"}}
    ],
    "output": "found",
}
EACH = {
    "id": "each",
    "type": "foreach",
    "items": "{l}",
    "output": "results",
    "steps": [{"id": "inner", "type": "set", "compute": {"shout": "item + '!'", "pos": "index"}}],
}
SEEN = {"id": "inner", "type": "set", "values": {"seen": "{item}"}}
FAN = {
    "id": "fan",
    "type": "parallel",
    "output": "both",
    "branches": [
        {"id": "one", "steps": [{"id": "p1", "type": "set", "values": {"q": 1}}]},
        {"id": "two", "steps": [{"id": "p2", "type": "set", "values": {"q": "text"}}]},
    ],
}


def document(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": "typed", "inputs": copy.deepcopy(INPUTS), "steps": list(steps)}


def when(expression: str, *before: dict[str, Any]) -> dict[str, Any]:
    route = {
        "id": "route",
        "type": "condition",
        "branches": [{"when": expression, "next": "end"}],
    }
    return document(*before, route)


def compute(expression: str, *before: dict[str, Any]) -> dict[str, Any]:
    return document(*before, {"id": "calc", "type": "set", "compute": {"v": expression}})


def problems_of(given: Any) -> list[tuple[str, str, str]]:
    _, problems = check_definition(given)
    return [(p.path, p.code, p.message) for p in problems]


def at_when(before: int = 0) -> str:
    return f"$.steps[{before}].branches[0].when"


def at_compute(before: int = 0) -> str:
    return f"$.steps[{before}].compute.v"


# (document, [(path, code, fragments the message holds)])
TYPE_ERRORS: list[Any] = [
    pytest.param(
        when("n > '3'"),
        [(at_when(), "type_error", ["'>'", "n (number)", "'3' (string)", "n > '3'"])],
        id="int-input-vs-string",
    ),
    pytest.param(
        compute("s + 1"),
        [(at_compute(), "type_error", ["'+'", "s (string)", "1 (int)", "s + string(1)"])],
        id="string-plus-int",
    ),
    pytest.param(
        compute("r.status + 1.5", FETCH),
        [(at_compute(1), "type_error", ["r.status (int)", "1.5 (double)", "double() or int()"])],
        id="http-status-plus-double",
    ),
    pytest.param(
        compute("n.x"),
        [(at_compute(), "type_error", ["the field 'x' of n", "no fields"])],
        id="field-of-a-number",
    ),
    pytest.param(
        when("n.all(v, v > 0)"),
        [(at_when(), "type_error", ["all() iterates over n", "a list or a map"])],
        id="macro-over-a-number",
    ),
    pytest.param(
        compute("size(n)"),
        [(at_compute(), "type_error", ["size() does not apply to n", "size() takes text"])],
        id="size-of-a-number",
    ),
    pytest.param(
        when("s"),
        [(at_when(), "type_error", ["gives a string, not a bool", "s == 'yes'"])],
        id="when-is-a-string",
    ),
    pytest.param(
        when("size(l)"),
        [(at_when(), "type_error", ["gives an int, not a bool", "size(l) > 0"])],
        id="when-is-an-int",
    ),
    pytest.param(
        compute("r.stauts", FETCH),
        [(at_compute(1), "unknown_field", ["no field 'stauts'", "did you mean 'status'"])],
        id="unknown-field-of-an-http-result",
    ),
    pytest.param(
        when("execution.started_at > timestamp('2020-01-01T00:00:00Z')"),
        [(at_when(), "type_error", ["(string)", "(timestamp)", "timestamp(execution.started_at)"])],
        id="time-as-text",
    ),
    pytest.param(
        compute("l.filter(v, v)"),
        [(at_compute(), "type_error", ["the condition of filter()", "not a bool"])],
        id="filter-predicate",
    ),
    pytest.param(
        compute("l.all(v, v + 1 > 0)"),
        [(at_compute(), "type_error", ["'+' cannot add v (string) and 1 (int)"])],
        id="inside-a-macro",
    ),
    pytest.param(
        when("'a' in s"),
        [(at_when(), "type_error", ["'in' looks in a list or a map", "s.contains('a')"])],
        id="in-text",
    ),
    pytest.param(
        compute("s.getHours()"),
        [(at_compute(), "type_error", ["getHours()", "timestamp(s).getHours()"])],
        id="getter-on-text",
    ),
    pytest.param(
        when("!n"),
        [(at_when(), "type_error", ["'!' applies to a bool"])],
        id="not-a-number",
    ),
    pytest.param(
        when("c.priority > 1", ASK),
        [(at_when(1), "type_error", ["c.priority (string)", "1 (int)"])],
        id="ai-json-field-from-the-schema",
    ),
    pytest.param(
        compute("c.json.urgency", ASK),
        [(at_compute(1), "unknown_field", ["no field 'urgency'", "priority, score"])],
        id="ai-json-closed-by-the-schema",
    ),
    pytest.param(
        compute("results.map(e, e.missing)", EACH),
        [(at_compute(1), "unknown_field", ["no field 'missing'", "pos, shout"])],
        id="foreach-element-fields",
    ),
    pytest.param(
        compute("results[0].pos + 's'", EACH),
        [(at_compute(1), "type_error", ["(int)", "(string)"])],
        id="foreach-index-is-an-int",
    ),
    pytest.param(
        compute("both.one.q + 'x'", FAN),
        [(at_compute(1), "type_error", ["both.one.q (int)", "'x' (string)"])],
        id="parallel-branch-output",
    ),
    pytest.param(
        compute("approval.approved + 1", SIGNAL),
        [(at_compute(1), "type_error", ["approval.approved (bool)"])],
        id="signal-payload-schema",
    ),
    pytest.param(
        compute("found.turns + 'x'", AGENT),
        [(at_compute(1), "type_error", ["found.turns (int)"])],
        id="agent-turns",
    ),
    pytest.param(
        document(
            {"id": "start", "type": "set", "values": {"count": 0}},
            {"id": "calc", "type": "set", "compute": {"v": "count + 0.5"}},
        ),
        [("$.steps[1].compute.v", "type_error", ["count (int)", "0.5 (double)"])],
        id="set-literal-then-compute",
    ),
    pytest.param(
        document(
            {"id": "first", "type": "set", "compute": {"k": "size(l)"}},
            {"id": "calc", "type": "set", "compute": {"v": "k + 'a'"}},
        ),
        [("$.steps[1].compute.v", "type_error", ["k (int)", "k is set by step 'first'"])],
        id="computed-type-flows",
    ),
    pytest.param(
        document(
            {"id": "start", "type": "set", "values": {"i": 0}},
            {"id": "more", "type": "set", "compute": {"i": "i + 1"}},
            {
                "id": "again",
                "type": "condition",
                "branches": [{"when": "i < 3", "next": "more"}],
            },
            {"id": "calc", "type": "set", "compute": {"v": "i + 's'"}},
        ),
        [("$.steps[3].compute.v", "type_error", ["i (int)"])],
        id="loop-keeps-its-type",
    ),
    pytest.param(
        when("counts.all(k, v, v)"),
        [(at_when(), "type_error", ["the condition of all() gives a number"])],
        id="two-variable-predicate",
    ),
    pytest.param(
        compute("strict.zz"),
        [(at_compute(), "unknown_field", ["no field 'zz'", "its fields: a"])],
        id="closed-input-object",
    ),
    pytest.param(
        compute("last_error.message + 1", {**FETCH, "on_error": "continue"}),
        [(at_compute(1), "type_error", ["last_error.message (string)"])],
        id="last-error",
    ),
    pytest.param(
        document(
            {"id": "copy", "type": "set", "values": {"y": "{n}", "t": "{n} items"}},
            {"id": "calc", "type": "set", "compute": {"v": "y + 's'", "w": "t + 's'"}},
        ),
        [("$.steps[1].compute.v", "type_error", ["y (number)"])],
        id="whole-reference-keeps-its-type",
    ),
    pytest.param(
        document(
            {"id": "each", "type": "foreach", "items": "{order}", "steps": [EACH["steps"][0]]}
        ),
        [("$.steps[0].items", "type_error", ["'{order}' is an object", "not a list"])],
        id="foreach-items-object",
    ),
    pytest.param(
        document(
            {"id": "each", "type": "foreach", "items": "{s}, {n}", "steps": [EACH["steps"][0]]}
        ),
        [("$.steps[0].items", "type_error", ["renders as text, not a list"])],
        id="foreach-items-text",
    ),
    pytest.param(
        document(
            {
                "id": "each",
                "type": "foreach",
                "items": "{nums}",
                "steps": [{"id": "in", "type": "set", "compute": {"w": "item + 's'"}}],
            }
        ),
        [("$.steps[0].steps[0].compute.w", "type_error", ["item (number)"])],
        id="foreach-item-type",
    ),
    pytest.param(
        document({"id": "wait", "type": "delay", "seconds": "{order}"}),
        [("$.steps[0].seconds", "type_error", ["'{order}' is an object", "not a number"])],
        id="delay-seconds-object",
    ),
    pytest.param(
        document({"id": "wait", "type": "delay", "seconds": "soon"}),
        [("$.steps[0].seconds", "type_error", ["'soon' is not a number"])],
        id="delay-seconds-text",
    ),
    pytest.param(
        document({"id": "wait", "type": "delay", "until": "{n}"}),
        [("$.steps[0].until", "type_error", ["is a number", "not ISO 8601"])],
        id="delay-until-number",
    ),
    pytest.param(
        document({"id": "wait", "type": "delay", "until": "tomorrow"}),
        [("$.steps[0].until", "type_error", ["not an ISO 8601 time with a zone"])],
        id="delay-until-text",
    ),
    pytest.param(
        document({"id": "say", "type": "set", "values": {"v": "got {n.x}"}}),
        [("$.steps[0].values.v", "type_error", ["{n.x}", "'n' is a number; it has no 'x'"])],
        id="template-into-a-number",
    ),
    pytest.param(
        document(FETCH, {"id": "say", "type": "set", "values": {"v": "{r.body}"}}),
        [("$.steps[1].values.v", "unknown_field", ["{r.body}", "no key 'body'"])],
        id="template-unknown-key",
    ),
]


@pytest.mark.parametrize(("given", "expected"), TYPE_ERRORS)
def test_a_type_error_is_refused_with_its_path_both_types_and_a_hint(
    given: dict[str, Any], expected: list[tuple[str, str, list[str]]]
) -> None:
    found = problems_of(given)
    assert [(path, code) for path, code, _ in found] == [(p, c) for p, c, _ in expected], found
    for (_, _, message), (_, _, fragments) in zip(found, expected, strict=True):
        for fragment in fragments:
            assert fragment in message, (fragment, message)


def test_the_message_places_the_operator_and_names_where_the_type_comes_from() -> None:
    ((path, code, message),) = problems_of(when("n > '3'"))
    assert (path, code) == ("$.steps[0].branches[0].when", "type_error")
    assert message == (
        "step 'route': '>' cannot compare n (number) with '3' (string): this fails whenever "
        "it runs\n  n > '3'\n    ^\nhint: n is an integer input (inputs.properties.n); "
        "compare with a number: n > 3"
    )


FINE: list[Any] = [
    pytest.param(when("r.json.count > '3'", FETCH), id="unknown-json-stays-dynamic"),
    pytest.param(when("n > 3.5 && n < 10u && x >= n"), id="numbers-compare-across-kinds"),
    pytest.param(when("n == '3' || s != 1 || l == order"), id="equality-takes-anything"),
    pytest.param(compute("n + 1"), id="integer-input-plus-int"),
    pytest.param(compute("n + 1.5"), id="integer-input-may-be-a-double"),
    pytest.param(compute("x * 2.0 + x"), id="number-arithmetic"),
    pytest.param(
        document(
            {
                "id": "pick",
                "type": "condition",
                "branches": [{"when": "b", "next": "text"}],
                "default": "number",
            },
            {"id": "text", "type": "set", "values": {"k": "a"}, "next": "calc"},
            {"id": "number", "type": "set", "values": {"k": 1}},
            {"id": "calc", "type": "set", "compute": {"v": "k + 1"}},
        ),
        id="joined-types-may-work",
    ),
    pytest.param(when("has(r.stauts) && r.stauts > 1", FETCH), id="has-guard"),
    pytest.param(when("'stauts' in r && r.stauts > 1", FETCH), id="in-guard"),
    pytest.param(compute("dyn(n) + 's'"), id="dyn-trusts-the-author"),
    pytest.param(when("[].all(v, v > 'a')"), id="empty-list-body-never-runs"),
    pytest.param(
        when("c.priority == 'high' && c.text.startsWith('x') && c.score > 0.5", ASK),
        id="ai-answer",
    ),
    pytest.param(compute("answer.anything", PLAIN_AI), id="ai-without-schema-is-open"),
    pytest.param(when("r.json.items.exists(i, i.done)", FETCH), id="dynamic-json-macro"),
    pytest.param(
        when("size(r.headers) > 0 && r.headers['content-type'].startsWith('a')", FETCH),
        id="headers",
    ),
    pytest.param(when("execution.workflow_id == 'typed'"), id="execution"),
    pytest.param(when("b && 1"), id="logic-with-one-bool-may-work"),
    pytest.param(compute("either + 1"), id="any-of-may-be-an-int"),
    pytest.param(compute("free + 1 + free.x"), id="no-type-is-dynamic"),
    pytest.param(compute("composed + 's'"), id="all-of-is-not-read"),
    pytest.param(compute("maybe + 's'"), id="nullable-text"),
    pytest.param(when("level == 'high' && level < 'z'"), id="enum"),
    pytest.param(
        when("timestamp(execution.started_at) > timestamp('2020-01-01T00:00:00Z')"),
        id="timestamps",
    ),
    pytest.param(compute("order.anything"), id="open-input-object"),
    pytest.param(compute("counts.anything + 1"), id="additional-properties"),
    pytest.param(when("counts.exists(k, v, v > 1 && k != '')"), id="two-variable-macro"),
    pytest.param(compute("l.map(v, v + '!')"), id="map"),
    pytest.param(
        compute("l.exists(l, l == 'a') && l.size() > 0"),
        id="macro-variable-shadows-a-run-variable",
    ),
    pytest.param(
        document({"id": "each", "type": "foreach", "items": "{nums}", "steps": [SEEN]}),
        id="foreach-over-a-list",
    ),
    pytest.param(
        document(
            FETCH,
            {"id": "each", "type": "foreach", "items": "{r.json}", "steps": [SEEN]},
        ),
        id="foreach-over-unknown",
    ),
    pytest.param(
        document({"id": "each", "type": "foreach", "items": [1, "a"], "steps": [SEEN]}),
        id="foreach-literal",
    ),
    pytest.param(document({"id": "wait", "type": "delay", "seconds": "{s}"}), id="seconds-text"),
    pytest.param(document({"id": "wait", "type": "delay", "seconds": "{b}"}), id="seconds-bool"),
    pytest.param(document({"id": "wait", "type": "delay", "seconds": "1{n}"}), id="seconds-mix"),
    pytest.param(document({"id": "wait", "type": "delay", "seconds": "2.5"}), id="seconds-number"),
    pytest.param(document({"id": "wait", "type": "delay", "until": "{s}"}), id="until-text"),
    pytest.param(
        document({"id": "wait", "type": "delay", "until": "2030-01-01T09:00:00Z"}),
        id="until-literal",
    ),
    pytest.param(when("last_error.step_id == null", {**FETCH, "on_error": "continue"})),
    pytest.param(
        document(
            {"id": "say", "type": "set", "values": {"v": "{order.id} {r.json.x.y}"}},
        ),
        id="templates-into-objects",
    ),
    pytest.param(compute("results.map(e, e.shout + e.pos.toString())", EACH), id="unknown-fn"),
]


@pytest.mark.parametrize("given", FINE)
def test_what_may_work_at_run_time_is_never_refused(given: dict[str, Any]) -> None:
    found = [(path, code, message) for path, code, message in problems_of(given)]
    assert not [p for p in found if p[1] in ("type_error", "unknown_field")], found


def test_every_example_and_a_large_definition_validate() -> None:
    for path in sorted(EXAMPLES.glob("*.json")):
        assert problems_of(json.loads(path.read_text(encoding="utf-8"))) == [], path.name


def test_a_large_definition_validates_well_under_a_second() -> None:
    steps: list[dict[str, Any]] = []
    for k in range(0, 1000, 5):
        steps += [
            {**FETCH, "id": f"fetch{k}", "output": f"r{k}"},
            {"id": f"calc{k}", "type": "set", "compute": {f"t{k}": f"n + {k}"}},
            {
                "id": f"route{k}",
                "type": "condition",
                "branches": [{"when": f"r{k}.status == 200 && t{k} > 3", "next": f"each{k}"}],
            },
            {
                **EACH,
                "id": f"each{k}",
                "output": f"e{k}",
                "steps": [{"id": f"in{k}", "type": "set", "compute": {"w": "item + '!'"}}],
            },
            {"id": f"use{k}", "type": "set", "compute": {f"u{k}": f"e{k}.map(v, v.w).size()"}},
        ]
    given = document(*steps)
    problems_of(given)  # compiled expressions are cached, as in a running API
    # CPU time, not wall time: the figure must not depend on what else the machine runs.
    started = time.process_time()
    assert problems_of(given) == []
    assert time.process_time() - started < 1.0


def test_every_problem_comes_back_in_one_answer() -> None:
    """A shape error, a bad jump, an unreachable step, an unknown name and a type error: each
    found although the others are there."""
    given = {
        "id": "five",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "steps": [
            {"id": "fetch", "type": "http", "url": 5, "output": "r"},
            {"id": "jump", "type": "set", "values": {"a": 1}, "next": "nowhere"},
            {"id": "greet", "type": "set", "values": {"g": "hello {nobody}"}},
            {"id": "route", "type": "condition", "branches": [{"when": "n > '3'", "next": "end"}]},
            {
                "id": "fan",
                "type": "parallel",
                "branches": [
                    {
                        "id": "one",
                        "steps": [
                            {"id": "done", "type": "set", "values": {"q": 1}, "next": "end"},
                            {"id": "orphan", "type": "set", "values": {"q": 2}},
                        ],
                    },
                    {"id": "two", "steps": [{"id": "other", "type": "set", "values": {"q": 3}}]},
                ],
            },
        ],
    }
    found = {(path, code) for path, code, _ in problems_of(given)}
    assert found == {
        ("$.steps[0].url", "invalid_definition"),
        ("$.steps[1].next", "unknown_next"),
        ("$.steps[2].values.g", "unknown_reference"),
        ("$.steps[3].branches[0].when", "type_error"),
        ("$.steps[4].branches[0].steps[1]", "unreachable_step"),
    }


def test_an_invalid_step_hides_nothing_it_does_not_touch() -> None:
    given = {
        "id": "salvage",
        "steps": [
            {"id": "fetch", "type": "http", "url": "https://example.com", "output": "r", "x": 1},
            {"id": "use", "type": "set", "values": {"v": "{r.status}", "w": "{missing}"}},
            {"id": "typo", "type": "htp", "output": "t"},
            {"id": "after", "type": "set", "values": {"u": "{t}"}, "next": "nowhere"},
            {
                "id": "wrap",
                "type": "foreach",
                "items": [1],
                "steps": [
                    {"id": "inner", "type": "delay"},
                    {"id": "fine", "type": "set", "compute": {"z": "1 + 'a'"}},
                ],
            },
        ],
    }
    found = [(path, code) for path, code, _ in problems_of(given)]
    assert found == [
        ("$.steps[0].x", "invalid_definition"),
        ("$.steps[2].type", "invalid_definition"),
        ("$.steps[4].steps[0]", "invalid_definition"),
        ("$.steps[3].next", "unknown_next"),
        ("$.steps[1].values.w", "unknown_reference"),
        ("$.steps[4].steps[1].compute.z", "type_error"),
    ]


def test_a_broken_inputs_schema_or_steps_list_answers_only_the_shape() -> None:
    bad_inputs = {
        "id": "x",
        "inputs": 5,
        "steps": [{"id": "a", "type": "set", "values": {"v": "{q}"}}],
    }
    assert [p[0] for p in problems_of(bad_inputs)] == ["$.inputs"]
    assert [p[0] for p in problems_of({"id": "x", "steps": []})] == ["$.steps"]


def test_a_jump_to_an_unknown_step_makes_no_other_step_unreachable() -> None:
    given = document(
        {"id": "a", "type": "set", "values": {"v": 1}, "next": "finsh"},
        {"id": "skipped", "type": "set", "values": {"w": 1}, "next": "end"},
        {"id": "finish", "type": "set", "values": {"u": "{v}"}},
    )
    assert [(p, c) for p, c, _ in problems_of(given)] == [("$.steps[0].next", "unknown_next")]


def test_a_bad_expression_is_reported_once() -> None:
    found = problems_of(when("n > && nobody"))
    assert [(p, c) for p, c, _ in found] == [(at_when(), "invalid_condition")]


def test_stored_definitions_can_be_read_without_the_type_checks() -> None:
    given = when("n > '3'")
    definition, problems = check_definition(given, types=False)
    assert definition is not None and problems == []


_SAMPLES = {
    "int": "2",
    "uint": "2u",
    "double": "2.5",
    "string": "'a'",
    "bool": "true",
    "null": "null",
    "bytes": "b'a'",
    "list": "[1]",
    "map": "{'a': 1}",
    "timestamp": "timestamp('2020-01-01T00:00:00Z')",
    "duration": "duration('1s')",
    "type": "int",
}


def _works(expression: str) -> bool:
    try:
        evaluate_expression(f"size([{expression}]) == 1", {})
    except ConditionError:
        return False
    return True


@pytest.mark.parametrize("function", sorted(BINARY))
def test_the_operator_tables_say_what_the_runtime_does(function: str) -> None:
    """The checks rest on these tables: a pair they refuse must fail in the runtime, and a
    pair the runtime takes must be listed."""
    operator = function.strip("_")
    for left, left_text in _SAMPLES.items():
        for right, right_text in _SAMPLES.items():
            listed = (left, right) in BINARY[function]
            works = _works(f"({left_text}) {operator} ({right_text})")
            assert listed == works, (left, operator, right)


def test_the_unary_and_function_tables_refuse_only_what_fails() -> None:
    for function, accepted in UNARY.items():
        for kind, text in _SAMPLES.items():
            works = _works(f"{function[0]}({text})")
            assert works == (kind in accepted), (function, kind)
    for (name, count), (kinds, _) in FUNCTIONS.items():
        if count != 1 or name == "type":
            continue
        for kind, text in _SAMPLES.items():
            if _works(f"{name}({text})") and kind not in kinds[0]:
                pytest.fail(f"{name}({kind}) works but the table refuses it")


async def test_a_type_error_is_a_422_naming_the_path_and_both_types(
    http: httpx.AsyncClient,
) -> None:
    given = when("n > '3'")
    given["id"] = "typed-save"
    saved = await http.put("/api/workflows/typed-save", json=given)
    assert saved.status_code == 422, saved.text
    (problem,) = saved.json()["errors"]
    assert problem["path"] == "$.steps[0].branches[0].when"
    assert problem["code"] == "type_error"
    assert "n (number)" in problem["message"] and "'3' (string)" in problem["message"]
    assert "n is an integer input (inputs.properties.n)" in problem["message"]

    given["steps"][0]["branches"][0]["when"] = "n > 3"
    saved = await http.put("/api/workflows/typed-save", json=given)
    assert saved.status_code in (200, 201), saved.text


async def test_validate_lists_every_problem_at_once(http: httpx.AsyncClient) -> None:
    given = {
        "id": "typed-validate",
        "inputs": {"type": "object", "properties": {"order": {"type": "object"}}},
        "steps": [
            {"id": "bad", "type": "http", "url": "https://example.com", "retry": 3},
            {
                "id": "each",
                "type": "foreach",
                "items": "{order}",
                "steps": [{"id": "x", "type": "set", "values": {"v": "{item}"}}],
            },
            {"id": "wait", "type": "delay", "seconds": "{order}", "next": "later"},
        ],
    }
    checked = await http.post("/api/workflows/validate", json=given)
    assert checked.status_code == 200, checked.text
    body = checked.json()
    assert body["valid"] is False
    assert [(e["path"], e["code"]) for e in body["errors"]] == [
        ("$.steps[0].retry", "invalid_definition"),
        ("$.steps[2].next", "unknown_next"),
        ("$.steps[1].items", "type_error"),
        ("$.steps[2].seconds", "type_error"),
    ]


def test_after_a_step_whose_output_cannot_be_read_any_name_may_have_any_type() -> None:
    given = document(
        {"id": "start", "type": "set", "values": {"k": 1}},
        {"id": "broken", "type": "set", "values": {"bad name": 2}},
        {"id": "calc", "type": "set", "compute": {"v": "k + 's'", "w": "unbound + 1"}},
    )
    assert [(p, c) for p, c, _ in problems_of(given)] == [
        ("$.steps[1].values.bad name.[key]", "invalid_definition")
    ]


def test_nested_loops_stay_fast() -> None:
    """Each level a loop around a foreach: the pass gives up before it takes long."""
    body: list[dict[str, Any]] = [{"id": "leaf", "type": "set", "compute": {"v": "k"}}]
    for level in range(12):
        body = [
            {"id": f"set{level}", "type": "set", "compute": {"k": "[k]"}},
            {
                "id": f"each{level}",
                "type": "foreach",
                "items": "{nums}",
                "output": "k",
                "steps": body,
            },
            {
                "id": f"loop{level}",
                "type": "condition",
                "branches": [{"when": "size(nums) > 3", "next": f"set{level}"}],
            },
        ]
    given = document({"id": "init", "type": "set", "values": {"k": 1}}, *body)
    started = time.process_time()
    problems_of(given)
    assert time.process_time() - started < 2.0


def test_top_level_shape_errors_hide_nothing_in_the_steps() -> None:
    given = {
        "id": "top",
        "timeout_seconds": -1,
        "triggers": [{"type": "schedule"}],
        "surprise": True,
        "steps": [{"id": "a", "type": "set", "values": {"v": "{missing}"}}],
    }
    found = [(path, code) for path, code, _ in problems_of(given)]
    assert found[-1] == ("$.steps[0].values.v", "unknown_reference")
    assert {path for path, _ in found[:-1]} == {"$.timeout_seconds", "$.triggers[0]", "$.surprise"}
