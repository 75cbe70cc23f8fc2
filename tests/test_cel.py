"""CEL in the engine: what the conformant evaluator fixed, its deviations, and its errors.

The conformance figures are in tests/test_cel_conformance.py; this module holds the cases
users met (docs/expressions.md) and the engine's own rules: map order, JSON results, the
names an expression reads, error messages, and that the legacy evaluator still answers as
old runs saw it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workflows.cel_budget import check_budget
from workflows.conditions import condition_variables, evaluate_condition, evaluate_expression
from workflows.errors import ConditionError
from workflows.validation import check_definition

ROOT = Path(__file__).resolve().parent.parent
FIVE = {"e": 1, "d": 2, "c": 3, "b": 4, "a": 5}


def value(expression: str, **context: Any) -> Any:
    return evaluate_expression(expression, context)


def legacy(expression: str, **context: Any) -> Any:
    return evaluate_expression(expression, context, conformant=False)


def error(expression: str, conformant: bool = True, **context: Any) -> str:
    with pytest.raises(ConditionError) as raised:
        evaluate_expression(expression, context, conformant=conformant)
    return str(raised.value)


# -- what users met --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "context", "expected"),
    [
        ("size('Zoë')", {}, 3),  # code points, not bytes
        ("type(n) == int", {"n": 3}, True),
        (
            "type(s) == string && type(l) == list && type(m) == map",
            {"s": "", "l": [], "m": {}},
            True,
        ),
        ("items.exists(x, x > 2) && x == 7", {"items": [1, 3], "x": 7}, True),
        ("string(timestamp('2009-02-13T23:31:30Z'))", {}, "2009-02-13T23:31:30Z"),
        ("[1, 2, 3].all(e, 6 / (2 - e) == 6)", {}, False),  # the error is absorbed
        ("[0, 1].exists(e, 1 / e == 1)", {}, True),
        ("1 / 0 == 1 || true", {}, True),
        ("bool('true') && !bool('f')", {}, True),
        ("[1, 2, 3].exists(i, v, i == 1 && v == 2)", {}, True),
        ("[2, 4, 6].transformList(i, v, v / 2 + i)", {}, [1, 3, 5]),
        ("{'a': 1}.transformMap(k, v, v * 10)", {}, {"a": 10}),
        ("m.existsOne(k, v, v > 4)", {"m": FIVE}, True),
        ("int(timestamp('2009-02-13T23:31:30Z'))", {}, 1234567890),
        ("timestamp('2009-02-13T23:31:30Z').getHours('Asia/Kathmandu')", {}, 5),
    ],
)
def test_what_users_met_now_works(expression: str, context: dict[str, Any], expected: Any) -> None:
    assert evaluate_expression(expression, context) == expected


def test_old_runs_keep_the_legacy_answers() -> None:
    assert legacy("size('Zoë')") == 4
    assert legacy("string(timestamp('2009-02-13T23:31:30Z'))").endswith("+00:00")
    assert "does not hold" in error("type(n) == int", conformant=False, n=1)


# -- maps iterate in sorted key order ---------------------------------------------------------


def test_map_iteration_is_sorted_and_stable() -> None:
    answers = {json.dumps(value("m.map(k, k)", m=FIVE)) for _ in range(20)}
    assert answers == {'["a", "b", "c", "d", "e"]'}
    assert value("{'e': 1, 'd': 2, 'c': 3, 'b': 4, 'a': 5}.map(k, k)") == list("abcde")
    assert value("m.filter(k, m[k] > 2)", m=FIVE) == ["a", "b", "c"]
    assert value("m.transformList(k, v, k + string(v))", m=FIVE) == [
        "a5",
        "b4",
        "c3",
        "d2",
        "e1",
    ]
    assert evaluate_condition("m.map(k, k)[0] == 'a'", {"m": FIVE})


def test_mixed_keys_sort_false_true_numbers_then_text() -> None:
    mixed = "{'b': 0, 3u: 0, true: 0, 2: 0, false: 0, 'a': 0}"
    assert value(f"{mixed}.map(k, k)") == [False, True, 2, 3, "a", "b"]
    # Python's True == 1: such a map would lose a key on the way to the sort, so it is refused.
    assert "cannot be iterated" in error("{true: 0, 1: 0}.map(k, k)")


def test_results_are_json_with_sorted_keys() -> None:
    result = value("{'b': 1, 'a': [duration('1.5s'), timestamp(0)], 2: 2u, true: null}")
    assert list(result) == ["true", "2", "a", "b"]
    assert result == {"true": None, "2": 2, "a": ["1.5s", "1970-01-01T00:00:00Z"], "b": 1}
    assert value("type(1)") == "int"
    assert value("[int, list, null_type, type(timestamp(0))]") == [
        "int",
        "list",
        "null_type",
        "google.protobuf.Timestamp",
    ]
    assert "convert them with string()" in error("b'abc'")


def test_two_variable_comprehensions_nest_four_deep() -> None:
    nested = "true"
    for depth in range(5):
        nested = f"l.exists(i{depth}, v{depth}, {nested})"
        if depth < 4:
            assert value(nested, l=[1, 2]) is True
    assert "nest at most 4 deep" in error(nested, l=[1, 2])


def test_lists_keep_their_order() -> None:
    assert value("l.map(x, x * 2)", l=[3, 1, 2]) == [6, 2, 4]
    assert value("l.filter(x, x != 1)", l=[3, 1, 2]) == [3, 2]


# -- the names an expression reads ------------------------------------------------------------


def test_names_read_leave_out_comprehension_variables_and_type_names() -> None:
    assert condition_variables("items.exists(x, x > 2) && x == 7") == {"items", "x"}
    assert condition_variables("m.all(k, v, v > limit)") == {"m", "limit"}
    assert condition_variables("type(n) == int && order.total > 3") == {"n", "order"}


def test_a_type_name_is_a_variable_when_the_run_holds_one() -> None:
    assert value("type == 'bug'", type="bug") is True
    assert value("type == 'bug'") is False  # no such variable: `type` is the type of types


def test_a_missing_name_says_it_is_no_input_or_step_output() -> None:
    message = error("status == high", status="x")
    assert "reads 'high', which is not an input or an earlier step's output" in message
    assert "quote it: 'high'" in message
    assert "{" not in message  # no template advice in CEL


# -- errors for people --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "place", "hint"),
    [
        ("status = 'high'", "at 1:8", "compare with '=='"),
        ("a and b", "at 1:3", "'&&' for 'and'"),
        ("a or not b", "at 1:3", "'!' for 'not', '||' for 'or'"),
        ("{order.total} > 3", "at 1:", "without braces"),
        ("x == \u2018high\u2019", "at 1:6", "straight quotes"),  # curly quotes
        ("x == 'high", "at 1:6", "closing quote"),
        ("if x then 1 else 2", "at 1:1", "condition ? value_if_true : value_if_false"),
    ],
)
def test_compile_errors_give_the_place_and_a_cel_hint(
    expression: str, place: str, hint: str
) -> None:
    message = error(expression)
    assert message.startswith("invalid CEL expression " + place)
    assert hint in message
    assert "^" in message.splitlines()[2]  # a caret under the expression
    assert "token recognition" not in message and "{{" not in message


def test_evaluation_errors_in_words() -> None:
    assert "has(order.discount)" in error("order.discount > 1", order={"total": 1})
    assert "does not apply to int and double" in error("n + 1.5", n=1)
    assert "division by zero" in error("1 / n", n=0)
    with pytest.raises(ConditionError, match="not a bool"):
        evaluate_condition("1", {})


def _problems(step: dict[str, Any]) -> dict[str, str]:
    document = {
        "id": "cel-errors",
        "inputs": {"type": "object", "properties": {"status": {"type": "string"}}},
        "steps": [step],
    }
    _, found = check_definition(document)
    return {p.path: p.message for p in found}


def test_save_time_errors_name_the_json_path_and_speak_cel() -> None:
    branch = {"when": "status = 'x'", "next": "end"}
    problems = _problems({"id": "pick", "type": "condition", "branches": [branch]})
    assert "invalid CEL expression at 1:8" in problems["$.steps[0].branches[0].when"]
    assert "compare with '=='" in problems["$.steps[0].branches[0].when"]
    problems = _problems({"id": "calc", "type": "set", "compute": {"n": "status == high"}})
    unknown = problems["$.steps[0].compute.n"]
    assert "reads 'high', which is not an input or an earlier step's output" in unknown
    assert "quote it: 'high'" in unknown
    assert "{{" not in unknown
    ok = {"id": "calc", "type": "set", "compute": {"n": "[1].exists(status, status > 0)"}}
    assert _problems(ok) == {}


# -- the cost bound covers the new comprehensions ----------------------------------------------


def test_two_variable_comprehensions_count_against_the_budget() -> None:
    big = list(range(3000))
    with pytest.raises(ConditionError, match="expression too costly"):
        check_budget("l.transformList(i, v, v * 2)", [big])
    with pytest.raises(ConditionError, match="expression too costly"):
        evaluate_expression("l.existsOne(i, v, l.exists(j, w, w == v))", {"l": big})


def test_the_runtime_stops_after_ten_thousand_iterations_in_all() -> None:
    assert value("l.all(x, x >= 0)", l=list(range(9_999))) is True
    message = error("l.all(x, x >= 0)", l=list(range(10_001)))
    assert "more than 10,000 times in all" in message


# -- determinism across processes ---------------------------------------------------------------

PROBE = """
import json, sys
from workflows.conditions import evaluate_condition, evaluate_expression
m = {"e": 1, "d": 2, "c": 3, "b": 4, "a": 5, "zz": {"y": 1, "x": 2}}
answers = []
for _ in range(20):
    answers.append([
        evaluate_expression("m.map(k, k)", {"m": m}),
        evaluate_expression("m.filter(k, k != 'c')", {"m": m}),
        evaluate_expression("m.transformList(k, v, k)", {"m": m}),
        evaluate_expression("m", {"m": m}),
        evaluate_expression("{'q': 1, 'p': 2, 'o': {'n': 3, 'm': 4}}", {}),
        evaluate_condition("m.map(k, k)[0] == 'a'", {"m": m}),
    ])
print(json.dumps(answers))
"""


def test_answers_are_the_same_in_processes_with_other_hash_seeds() -> None:
    outputs = []
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        answers = json.loads(done.stdout)
        assert all(a == answers[0] for a in answers)  # 20 evaluations in one process agree
        outputs.append(json.dumps(answers[0]))  # key order included
    assert len(set(outputs)) == 1
