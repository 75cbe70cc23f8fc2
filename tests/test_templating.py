"""Substitution rules (SPEC §3), table-driven from tests/cases/templating.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workflows.errors import InvalidReferenceError, TemplateError
from workflows.templating import (
    MAX_TEMPLATE_DEPTH,
    Reference,
    VariableSubstitutor,
    fill_deferred,
    references_in,
    tokenize,
)

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
