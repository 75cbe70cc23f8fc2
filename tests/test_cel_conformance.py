"""cel-spec's conformance cases through the engine's own evaluation path.

The cases are vendored (tests/conformance/cel-spec, never fetched at test time) and read by
tests/conformance/cel_cases.py, which also says which are in scope. Each in-scope case runs
through ``workflows.conditions.evaluate_expression``, the function `set` and `condition` steps
call. The conformant evaluator must fail exactly the cases listed below (a fix that makes one
pass is welcome: take it off the list); the legacy evaluator, kept for runs started before
the ``cel-conformant`` marker, must answer exactly as it always did.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.conformance import cel_cases
from workflows.cel_syntax import SYNTAX_PROTO, descriptor_proto
from workflows.conditions import evaluate_expression
from workflows.errors import ConditionError

# A name the run does not hold is an error before evaluation (save-time validation names it);
# CEL would evaluate `x || true` to true, absorbing the unbound name's error.
UNBOUND = "an unbound name is refused before evaluation, not absorbed by || or &&"
KNOWN_FAILURES = {
    "basic: variables/unbound_is_runtime_error": UNBOUND,
    **{
        f"parse: receiver_function_names/{word}": UNBOUND
        for word in [
            *("as", "break", "const", "continue", "else", "for", "function", "if", "import"),
            *("let", "loop", "package", "namespace", "return", "var", "void", "while"),
        ]
    },
    "fields: qualified_identifier_resolution/map_value_repeat_key_heterogeneous": (
        "cel-cpp accepts the map literal {0: 1, 0u: 2}, whose keys are equal numbers"
    ),
}

# The figures in docs/expressions.md.
IN_SCOPE = 1037
OUT_OF_SCOPE = {
    cel_cases.BYTES: 77,
    cel_cases.CONTAINER: 64,
    cel_cases.MESSAGES: 36,
    cel_cases.DOTTED_NAME: 5,
    cel_cases.NOT_FINITE: 3,
    cel_cases.UINT_BINDING: 1,
    cel_cases.TEMPORAL_BINDING: 1,
}
LEGACY_PASSED = 918


def _passes(case: cel_cases.Case, conformant: bool) -> bool:
    try:
        value = evaluate_expression(case.expr, case.bindings, conformant=conformant)
    except ConditionError:
        return case.expected.error
    return not case.expected.error and cel_cases.same(value, case.expected.value)


def _in_scope() -> list[cel_cases.Case]:
    return [case for case in cel_cases.all_cases() if case.excluded is None]


def test_the_scope_is_as_documented() -> None:
    excluded = Counter(c.excluded for c in cel_cases.all_cases() if c.excluded is not None)
    assert dict(excluded) == OUT_OF_SCOPE
    assert len(_in_scope()) == IN_SCOPE


def test_the_conformant_evaluator_fails_only_the_known_cases() -> None:
    failing = {f"{c.file}: {c.name}" for c in _in_scope() if not _passes(c, conformant=True)}
    assert failing == set(KNOWN_FAILURES), (
        f"newly failing: {sorted(failing - set(KNOWN_FAILURES))}; "
        f"now passing (take them off the list): {sorted(set(KNOWN_FAILURES) - failing)}"
    )
    assert (IN_SCOPE - len(KNOWN_FAILURES)) / IN_SCOPE >= 0.95


@pytest.mark.parametrize("file", cel_cases.files())
def test_each_file_passes_through_the_engine(file: str) -> None:
    cases = [c for c in cel_cases.load(file) if c.excluded is None]
    failing = {f"{c.file}: {c.name}" for c in cases if not _passes(c, conformant=True)}
    assert failing <= set(KNOWN_FAILURES)


def test_the_legacy_evaluator_answers_as_it_always_did() -> None:
    """Old runs replay with it: any change in what it computes could change their path."""
    assert sum(_passes(c, conformant=False) for c in _in_scope()) == LEGACY_PASSED


def test_the_syntax_descriptor_is_cel_specs() -> None:
    from google.protobuf import descriptor_pb2

    vendored = descriptor_pb2.FileDescriptorSet.FromString(
        (Path(cel_cases.ROOT) / "descriptors.binpb").read_bytes()
    )
    (syntax,) = [f for f in vendored.file if f.name == SYNTAX_PROTO]
    syntax.ClearField("source_code_info")
    syntax.options.Clear()
    assert descriptor_proto() == syntax
