"""Substitution rules (README "Substitution"), table-driven from tests/cases/templating.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import outcome, start_definition
from workflows.errors import InvalidReferenceError, TemplateError
from workflows.interpreter.patches import SETTLING
from workflows.templating import (
    MAX_TEMPLATE_DEPTH,
    Reference,
    VariableSubstitutor,
    fill_deferred,
    references_in,
    tokenize,
)
from workflows.validation import check_definition

CASES = json.loads((Path(__file__).parent / "cases" / "templating.json").read_text())


def _cases() -> list[Any]:
    out = []
    for group in CASES:
        for case in group["cases"]:
            out.append(pytest.param(group["given"], case, id=case["comment"]))
    return out


@pytest.mark.parametrize(("given", "case"), _cases())
def test_substitution_case(given: dict[str, Any], case: dict[str, Any]) -> None:
    substitutor = VariableSubstitutor(given)
    if "error" in case:
        with pytest.raises(InvalidReferenceError) as caught:
            substitutor.render(case["template"])
        assert case["error"] in str(caught.value)
    else:
        assert substitutor.render(case["template"]) == case["result"]


def test_renders_nested_structures_and_leaves_non_strings() -> None:
    value = {"a": ["{n}", {"b": "x{n}"}], "c": 1, "d": None}
    assert VariableSubstitutor({"n": 2}).render(value) == {
        "a": [2, {"b": "x2"}],
        "c": 1,
        "d": None,
    }


def test_substituted_values_are_not_mutated_or_rescanned() -> None:
    context = {"payload": {"text": "{secret_looking}"}}
    rendered = VariableSubstitutor(context).render("{payload}")
    assert rendered == {"text": "{secret_looking}"}


def test_secret_references_become_slots_not_values() -> None:
    substitutor = VariableSubstitutor({"user": "ada"})
    rendered, slots = substitutor.render_deferred(
        {"headers": {"Authorization": "Bearer {secrets.TOKEN}", "X-User": "{user}"}}
    )
    # The workflow-side value shows the template, never a secret.
    assert rendered["headers"]["Authorization"] == "Bearer {secrets.TOKEN}"
    assert rendered["headers"]["X-User"] == "ada"
    assert len(slots) == 1
    filled = fill_deferred(rendered, slots, {"secrets": {"TOKEN": "s3cr3t"}})
    assert filled["headers"]["Authorization"] == "Bearer s3cr3t"


def test_a_value_that_looks_like_a_secret_reference_is_never_resolved() -> None:
    # AI output or user input containing "{secrets.X}" must stay text: slots come only from
    # the definition's own templates.
    substitutor = VariableSubstitutor({"ai": "{secrets.TOKEN}"})
    rendered, slots = substitutor.render_deferred({"body": "{ai}", "text": "says {ai}"})
    assert slots == []
    assert rendered == {"body": "{secrets.TOKEN}", "text": "says {secrets.TOKEN}"}


def test_secrets_refused_outside_activities() -> None:
    with pytest.raises(TemplateError, match="secret references"):
        VariableSubstitutor({}).render("{secrets.TOKEN}")


def test_references_in_reports_json_paths() -> None:
    found = list(references_in({"url": "{base}/x", "body": ["{a.b}", "{{c}}"]}))
    assert found == [("$.url", Reference("base")), ("$.body[0]", Reference("a.b"))]


def test_tokenize_merges_literals() -> None:
    assert [type(t).__name__ for t in tokenize("a {b} c {{d}} e")] == [
        "Literal",
        "Reference",
        "Literal",
    ]


def test_deep_structures_are_refused_not_recursion_errors() -> None:
    value: Any = "x"
    for _ in range(MAX_TEMPLATE_DEPTH + 5):
        value = [value]
    with pytest.raises(TemplateError, match="nested deeper"):
        VariableSubstitutor({}).render(value)
    with pytest.raises(TemplateError, match="nested deeper"):
        list(references_in(value))


def test_huge_template_is_linear() -> None:
    template = "{n}" * 50_000 + "{" * 50_000
    rendered = VariableSubstitutor({"n": 1}).render(template)
    assert rendered.startswith("1" * 50_000)


# -- leading-zero indexes (RFC 6901) and the runs that predate the rule ------------------------


def test_runs_started_before_the_rule_keep_reading_a_leading_zero_as_an_index() -> None:
    context = {"items": [{"title": "first"}, {"title": "second"}]}
    old = VariableSubstitutor(context, strict_indexes=False)
    assert old.render("{items.01.title}") == "second"
    assert old.render("{items.00.title} and {items.1.title}") == "first and second"
    assert tokenize("{items.01}", strict_indexes=False) == [Reference("items.01")]
    # The rule everywhere else (save-time checks, the API, runs started since): text.
    assert VariableSubstitutor(context).render("{items.01.title}") == "{items.01.title}"
    assert list(references_in({"a": "{items.01}", "b": "{items.1}"})) == [
        ("$.b", Reference("items.1"))
    ]
    assert list(references_in("{items.01}", strict_indexes=False)) == [("$", Reference("items.01"))]


def test_save_time_checks_treat_a_leading_zero_path_as_text() -> None:
    document = {
        "id": "zeros",
        "steps": [{"id": "a", "type": "set", "values": {"text": "{nothing.01}"}}],
    }
    assert check_definition(document)[1] == []  # not a reference, so not an unknown one


async def test_a_run_reads_leading_zero_paths_as_text_and_records_the_marker(
    client: Client, settings: Settings, worker: Any
) -> None:
    document = {
        "id": "leading-zero",
        "inputs": {"type": "object", "properties": {"items": {"type": "array"}}},
        "steps": [
            {"id": "pick", "type": "set", "values": {"zero": "{items.01}", "one": "{items.1}"}}
        ],
    }
    handle = await start_definition(client, settings, document, {"items": [["a", "b"], ["c"]]})
    state = await outcome(handle)
    assert state["status"] == "completed", state
    assert state["outputs"]["zero"] == "{items.01}"
    assert state["outputs"]["one"] == ["c"]
    history = await handle.fetch_history()
    markers = [
        event.SerializeToString()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    # Its own marker, or the newest, which settles every older one (workflows/versions.py).
    newest = SETTLING[0].encode()
    assert any(b"strict-list-indexes" in m or newest in m for m in markers)
