"""Measure Python CEL runtimes the way the engine uses them (docs/expressions.md has the figures).

    python -m bench.cel_runtimes --runtime engine           # the engine, conformant semantics
    python -m bench.cel_runtimes --runtime engine-legacy    # the engine as runs before it had them
    python -m bench.cel_runtimes --runtime cel-expr-python  # a candidate runtime, as it comes

For each runtime: the cel-spec conformance cases in scope (tests/conformance/cel_cases.py) per
file; determinism (each case and a few map probes evaluated 20 times in this process, then
the whole answer compared across processes with other PYTHONHASHSEEDs); and µs per
evaluation of a typical condition and of macros over a 100-item list.

``engine`` and ``engine-legacy`` go through ``workflows.conditions``, the functions `set` and
`condition` steps call. A candidate runtime goes through the same steps the engine takes
(compile once, cost bound, evaluate, convert to JSON), with only the runtime swapped, so the
counts compare runtimes and not wrappers. Candidates need their package installed (in a
scratch venv: python-cel installs a module named ``cel`` too, so it cannot sit beside
common-expression-language).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import timeit
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from tests.conformance import cel_cases
from workflows.cel_budget import check_budget

Evaluate = Callable[[str, dict[str, Any]], Any]


class Failed(Exception):
    """The expression did not give a value (a compile or evaluation error)."""


def _engine(conformant: bool) -> Evaluate:
    from workflows.conditions import evaluate_expression
    from workflows.errors import ConditionError

    def evaluate(expression: str, context: dict[str, Any]) -> Any:
        try:
            return evaluate_expression(expression, context, conformant=conformant)
        except ConditionError as err:
            raise Failed(str(err)) from None

    return evaluate


def _json(value: Any) -> Any:
    """What the engine hands back, for a candidate runtime's Python value."""
    if value is None:
        return None
    for plain in (bool, int, float, str):  # runtimes hand back subclasses (celpy's IntType)
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return cel_cases.duration_text(int(value.total_seconds()), value.microseconds * 1000)
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, type):
        return value.__name__.lower().removesuffix("type")
    raise Failed(f"a {type(value).__name__} is not a JSON value")


def _candidate(
    compile: Callable[[str], Any], run: Callable[[Any, dict[str, Any]], Any]
) -> Evaluate:
    cached = lru_cache(maxsize=4096)(compile)

    def evaluate(expression: str, context: dict[str, Any]) -> Any:
        try:
            program = cached(expression)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # python-cel's Rust panics are BaseExceptions
            raise Failed(f"compile: {type(err).__name__}: {err}") from None
        check_budget(expression, context.values())
        try:
            return _json(run(program, context))
        except Failed:
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # python-cel's Rust panics are BaseExceptions
            raise Failed(f"{type(err).__name__}: {err}") from None

    return evaluate


# cel-expr-python's names of types, as CEL spells them.
_TYPE_NAMES = {
    "null": "null_type",
    "timestamp": "google.protobuf.Timestamp",
    "duration": "google.protobuf.Duration",
}


def _cel_expr_python() -> Evaluate:
    from cel_expr_python import cel  # type: ignore[import-not-found]

    env = cel.NewEnv()

    def run(program: Any, context: dict[str, Any]) -> Any:
        value = program.eval(data=context)
        if value.type() == cel.Type.ERROR:
            raise Failed(str(value.value()))
        if value.type() == cel.Type.TYPE:
            name = value.value().name().split("<")[0].lower()
            return _TYPE_NAMES.get(name, name)
        if value.type() == cel.Type.BYTES:
            raise Failed("bytes")
        return value.plain_value()

    return _candidate(lambda e: env.compile(e, disable_check=True), run)


def _cel_python() -> Evaluate:
    import celpy  # type: ignore[import-not-found]

    env = celpy.Environment()

    def run(program: Any, context: dict[str, Any]) -> Any:
        value = program.evaluate(celpy.json_to_cel(context) if context else {})
        return _plain(value)

    def _plain(value: Any) -> Any:
        """celpy's BoolType is an int subclass: make it a bool before the shared conversion."""
        if isinstance(value, celpy.CELEvalError | bytes):
            raise Failed(str(value))
        if isinstance(value, celpy.celtypes.BoolType):
            return bool(value)
        if isinstance(value, list):
            return [_plain(v) for v in value]
        if isinstance(value, dict):
            return {k: _plain(v) for k, v in value.items()}
        return value

    return _candidate(lambda e: env.program(env.compile(e)), run)


def _python_cel() -> Evaluate:
    import cel  # type: ignore[import-not-found]

    program: Any = cel.Program  # python-cel's, not common-expression-language's (no arguments)
    return _candidate(program, lambda p, context: p.execute(cel.Context(context)))


RUNTIMES: dict[str, Callable[[], Evaluate]] = {
    "engine": lambda: _engine(True),
    "engine-legacy": lambda: _engine(False),
    "cel-expr-python": _cel_expr_python,
    "cel-python": _cel_python,
    "python-cel": _python_cel,
}

# Map iteration probes beyond the conformance cases (the bug that started this measurement).
PROBES: list[tuple[str, dict[str, Any]]] = [
    ("m.map(k, k)", {"m": {"e": 1, "d": 2, "c": 3, "b": 4, "a": 5}}),
    ("m.filter(k, m[k] > 1)", {"m": {"e": 1, "d": 2, "c": 3, "b": 4, "a": 5}}),
    ("{'e': 1, 'd': 2, 'c': 3, 'b': 4, 'a': 5}.map(k, k)", {}),
    ("m.map(k, k)[0] == 'a'", {"m": {"e": 1, "d": 2, "c": 3, "b": 4, "a": 5}}),
    ("m", {"m": {"e": 1, "d": 2, "c": 3, "b": 4, "a": 5}}),
    ("{'e': 1, 'd': 2, 'c': 3, 'b': 4, 'a': 5}", {}),
    ("m.transformList(k, v, k + string(v))", {"m": {"e": 1, "d": 2, "c": 3, "b": 4}}),
]


def _outcome(evaluate: Evaluate, expression: str, context: dict[str, Any]) -> str:
    try:
        return "= " + json.dumps(evaluate(expression, context))
    except Failed as err:
        return "! " + str(err)[:200]
    except Exception as err:  # a runtime crash is an outcome too
        return f"!! {type(err).__name__}: {str(err)[:200]}"


def conformance(evaluate: Evaluate) -> tuple[dict[str, tuple[int, int]], list[str], int]:
    """Per file (passed, in scope); failing case names; cases whose answer varied in-process."""
    passed: Counter[str] = Counter()
    total: Counter[str] = Counter()
    failures: list[str] = []
    unstable = 0
    for case in cel_cases.all_cases():
        if case.excluded:
            continue
        total[case.file] += 1
        outcomes = {_outcome(evaluate, case.expr, case.bindings) for _ in range(20)}
        unstable += len(outcomes) > 1
        outcome = outcomes.pop()
        if case.expected.error:
            ok = outcome.startswith("!")
        else:
            ok = outcome.startswith("= ") and cel_cases.same(
                json.loads(outcome[2:]), case.expected.value
            )
        if ok:
            passed[case.file] += 1
        else:
            failures.append(f"{case.file}: {case.name}: {case.expr} -> {outcome[:120]}")
    return {f: (passed[f], total[f]) for f in sorted(total)}, failures, unstable


def fingerprint(evaluate: Evaluate) -> tuple[str, int]:
    """A digest of every answer (cases and probes, in order) and how many varied in-process."""
    digest = hashlib.sha256()
    unstable = 0
    work = [(c.expr, c.bindings) for c in cel_cases.all_cases() if not c.excluded] + PROBES
    for expression, context in work:
        outcomes = [_outcome(evaluate, expression, context) for _ in range(20)]
        unstable += len(set(outcomes)) > 1
        digest.update(outcomes[0].encode())
    return digest.hexdigest(), unstable


def across_processes(runtime: str, seeds: tuple[str, ...] = ("1", "2", "3")) -> int:
    """How many distinct fingerprints processes with different PYTHONHASHSEEDs give."""
    prints = set()
    for seed in seeds:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-m", "bench.cel_runtimes", "--runtime", runtime, "--fingerprint"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        prints.add(out.stdout.split()[0])
    return len(prints)


TIMED: list[tuple[str, dict[str, Any]]] = [
    ("classification.priority == 'high' && n > 3", {}),
    ("items.exists(x, x > 98)", {}),
    ("items.all(x, x >= 0)", {}),
    ("items.map(x, x * 2)", {}),
    ("items.filter(x, x % 2 == 0)", {}),
    ("fields.exists(k, fields[k] > 98)", {}),
]


def timings(evaluate: Evaluate) -> dict[str, float | None]:
    """µs per evaluation (best of 5 rounds), in a context shaped like a run's."""
    context = {
        "classification": {"priority": "high", "label": "billing"},
        "n": 5,
        "items": list(range(100)),
        "fields": {f"f{i:03d}": i for i in range(100)},
        "execution": {"id": "x", "run_id": "y", "workflow_id": "w"},
        "ticket": {"subject": "hello", "body": "x" * 200, "tags": ["a", "b"]},
    }
    result: dict[str, float | None] = {}
    for expression, _ in TIMED:
        try:
            evaluate(expression, context)  # compile outside the timing, as the cache does
        except Failed:
            result[expression] = None  # the runtime cannot evaluate it
            continue
        number = 5000 if expression.startswith("classification") else 200
        best = min(
            timeit.repeat(
                lambda e=expression: evaluate(e, context),  # type: ignore[misc]
                number=number,
                repeat=5,
            )
        )
        result[expression] = round(best / number * 1e6, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=sorted(RUNTIMES), default="engine")
    parser.add_argument("--fingerprint", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--failures", action="store_true", help="list the failing cases")
    args = parser.parse_args()
    evaluate = RUNTIMES[args.runtime]()
    if args.fingerprint:
        print(*fingerprint(evaluate))
        return
    per_file, failures, unstable = conformance(evaluate)
    report = {
        "runtime": args.runtime,
        "conformance": per_file,
        "passed": sum(p for p, _ in per_file.values()),
        "in_scope": sum(t for _, t in per_file.values()),
        "unstable_in_process": unstable,
        "unstable_probes": fingerprint(evaluate)[1] - unstable,
        "fingerprints_across_3_processes": across_processes(args.runtime),
        "us": timings(evaluate),
    }
    print(json.dumps(report))
    if args.failures:
        print("\n".join(failures))


if __name__ == "__main__":
    main()
