"""Save-time type checks of a definition (docs/expressions.md "Types at save time").

The types of what each step may read come from a data-flow pass over each list of steps
(workflows/step_graph.py), like the reference checks' but carrying types: the inputs' from the
``inputs`` JSON Schema, ``execution`` and ``last_error`` from the engine, and what each step
binds from its kind (``StepKind.result_types``: an http result, an ai answer shaped by its
``response_format``, a ``set`` step's literals, references and CEL results, a foreach's list
of what its iterations bound...). Where several steps may bind a name, the types join
(workflows/value_types.py). Only names that some expression or template reads are carried.

Then, at each step, with the types there: its CEL expressions (workflows/cel_types.py; a
``when`` must be able to give a bool), its template references (a path no value of the type
can have, ``{n.x}`` with ``n`` a number), and the fields a value of the wrong type makes fail
(``foreach.items``, ``delay.seconds``, ``delay.until``). Each report is a failure that happens
whenever that part runs; anything that might work is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflows.cel_types import Finding, infer, names_read, position
from workflows.conditions import compile_condition
from workflows.definition import WorkflowDefinition
from workflows.errors import ConditionError, Problem, TemplateError
from workflows.input_schema import declarations
from workflows.kinds import Step, kind_of
from workflows.kinds.common import LAST_ERROR
from workflows.kinds.delay import DelayStep
from workflows.kinds.foreach import ForeachStep
from workflows.step_graph import StepList
from workflows.templating import DEFERRED_ROOTS, Literal, Reference, references_in, tokenize
from workflows.type_hints import input_origin, origin_hint
from workflows.value_types import (
    ANY_NAME,
    BOOL,
    DYN,
    INT,
    LIST,
    MAP,
    NULL,
    NUMBER,
    STRING_T,
    Type,
    a,
    as_json,
    at_path,
    join,
    join_all,
    list_of,
    nullable,
    object_of,
    of_literal,
    of_schema,
    scalar,
)

MAX_VISITS = 40
"""Visits per step of the data-flow pass before it gives up on a list (and checks nothing
there): joins settle long before in any real definition."""
VISITS_PER_STEP = 20
"""Visits over the whole definition, per step it holds (a real definition needs one or two:
each list is passed once or a few times, and again when the types around it change)."""
TYPE_WORK = 800_000
"""Typed names the pass carries through one list before it gives up on it (a list of
thousands of steps each reading the one before): a definition stays fast to save."""

_EXECUTION = object_of(
    {
        "id": STRING_T,
        "run_id": STRING_T,
        "workflow_id": join(STRING_T, scalar(INT)),  # a definition's id may be a number
        "started_at": STRING_T,
        "api_url": STRING_T,
    }
)
_LAST_ERROR = object_of({"step_id": nullable(STRING_T), "type": STRING_T, "message": STRING_T})


@dataclass(frozen=True)
class Var:
    """What a step may see under a name: its type, and where it comes from (for hints)."""

    type: Type
    origin: str | None = None


Env = dict[str, Var]


def type_problems(
    definition: WorkflowDefinition, lists: list[StepList], inputs_valid: bool = True
) -> list[Problem]:
    """Every type error of the definition (``lists``: workflows/step_graph.py)."""
    checks = _TypeChecks(lists)
    top = checks.tracked_only(_top_level(definition, inputs_valid))
    found: list[Problem] = []
    checks.check_list("$.steps", top, found)
    return found


def _top_level(definition: WorkflowDefinition, inputs_valid: bool) -> Env:
    env: Env = {"execution": Var(_EXECUTION, "what the engine says of the run")}
    schema = definition.inputs
    if not isinstance(schema, dict):
        return env
    try:
        names = declarations(schema).names
    except Exception:  # a schema the schema checks refuse (and report): nothing is known
        return env
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    for name in names:
        declared = properties.get(name)
        known = inputs_valid and isinstance(declared, dict)
        env[name] = Var(of_schema(declared) if known else DYN, input_origin(name, declared))
    return env


class _TypeChecks:
    """The data flow of types through the lists of steps, and the checks at each step."""

    def __init__(self, lists: list[StepList]) -> None:
        self._lists = {steps.where: steps for steps in lists}
        self._tracked = _names_read(lists)
        self._flows: dict[str, tuple[Env, list[Env | None] | None]] = {}
        # Visits over every list together: nested lists in loops are passed again each time
        # their holder's types change, and the pass must stay fast whatever the nesting.
        self._visits = VISITS_PER_STEP * sum(len(steps.steps) for steps in lists) + 1000

    def tracked_only(self, env: Env) -> Env:
        """The names some expression or template reads (and the wildcard of an invalid step,
        which may have bound any of them)."""
        return {n: var for n, var in env.items() if n in self._tracked or n == ANY_NAME}

    def check_list(self, where: str, outer: Env, found: list[Problem]) -> None:
        steps = self._lists.get(where)
        envs = None if steps is None else self.flow(steps, outer)
        if steps is None or envs is None:
            return
        for index, step in enumerate(steps.steps):
            env = envs[index]
            if index in steps.opaque or env is None:
                continue  # an invalid step, or one no step leads to
            here = steps.at(index)
            found += _StepChecks(step, here, env).problems()
            kind = kind_of(step)
            typer = _Typer(self, env, here)
            for scope, adds in zip(kind.scopes(step), kind.scope_types(step, typer), strict=True):
                inner = dict(env)
                inner.update(self.tracked_only(_added(step, adds)))
                self.check_list(f"{here}{scope.path}", inner, found)

    def flow(self, steps: StepList, outer: Env) -> list[Env | None] | None:
        """The types each node of the list may see (None: unreached); None when they cannot
        be settled within the bounds. A list whose jumps cannot all be followed, or whose
        pass carries more than :data:`TYPE_WORK` typed names, gets one set of types for all
        its steps (:meth:`_everywhere`)."""
        cached = self._flows.get(steps.where)
        if cached is not None and cached[0] == outer:
            return cached[1]
        result = self._everywhere(steps, outer) if steps.hub is not None else None
        if steps.hub is None:
            result = self._along(steps, outer)
            if result is None and self._visits > 0:
                result = self._everywhere(steps, outer)
        self._flows[steps.where] = (outer, result)
        return result

    def _along(self, steps: StepList, outer: Env) -> list[Env | None] | None:
        """The types along the control flow: at each step, the join over the paths to it."""
        count = len(steps.graph)
        envs: list[Env | None] = [None] * count
        envs[0] = dict(outer)
        work = [0]
        visits = MAX_VISITS * count
        carried = TYPE_WORK
        while work and visits > 0 and carried > 0 and self._visits > 0:
            visits -= 1
            self._visits -= 1
            node = work.pop()
            succeeded, failed = self._after(steps, node, envs[node] or {})
            for target, on_failure in steps.graph[node]:
                if target < 0:
                    continue
                outgoing = failed if on_failure else succeeded
                carried -= len(outgoing)
                merged = _merged(envs[target], outgoing)
                if merged is not None:
                    envs[target] = merged
                    work.append(target)
        return None if work else envs

    def _everywhere(self, steps: StepList, outer: Env) -> list[Env | None] | None:
        """One set of types for every step of the list, whatever the order they run in: the
        join of the outer types and of everything the list binds (less precise, never
        wrong, and linear in the list's length)."""
        env = dict(outer)
        fails = any(on_failure for edges in steps.graph for _, on_failure in edges)
        if fails and LAST_ERROR in self._tracked:
            _join_into(env, {LAST_ERROR: Var(_LAST_ERROR, "the failure on_error routed")})
        for _ in range(MAX_VISITS):
            changed = False
            for node in range(len(steps.steps)):
                self._visits -= 1
                bound = self.tracked_only(self.bound(steps, node, env))
                changed = _join_into(env, bound) or changed
            if not changed:
                return [env] * len(steps.graph)
            if self._visits <= 0:
                break
        return None

    def _after(self, steps: StepList, node: int, env: Env) -> tuple[Env, Env]:
        """What the successors see after the node succeeds, and after it fails."""
        if node >= len(steps.steps):
            return env, env  # the hub
        failed = env
        if LAST_ERROR in self._tracked:
            failed = {**env, LAST_ERROR: Var(_LAST_ERROR, "the failure on_error routed")}
        bound = self.bound(steps, node, env)
        return {**env, **self.tracked_only(bound)}, failed

    def bound(self, steps: StepList, node: int, env: Env) -> Env:
        """What the step at ``node`` binds, typed with what it sees."""
        opaque = steps.opaque.get(node)
        if opaque is not None:
            names = [ANY_NAME] if opaque.binds is None else sorted(opaque.binds)
            return {name: Var(DYN) for name in names}
        step = steps.steps[node]
        typer = _Typer(self, env, steps.at(node))
        origin = (
            f"set by step '{step.id}'"
            if step.type == "set"
            else f"the output of {step.type} step '{step.id}'"
        )
        return {name: Var(t, origin) for name, t in kind_of(step).result_types(step, typer).items()}

    def scope_binds(self, where: str, outer: Env) -> dict[str, Type]:
        """Every name a nested list's steps bind, each with the join of its types."""
        steps = self._lists.get(where)
        envs = None if steps is None else self.flow(steps, outer)
        if steps is None or envs is None:
            return {ANY_NAME: DYN}
        found: dict[str, Type] = {}
        for node, env in enumerate(envs[: len(steps.steps)]):
            if env is None:
                continue
            for name, var in self.bound(steps, node, env).items():
                found[name] = join(found[name], var.type) if name in found else var.type
        return found


def _added(step: Step, adds: Mapping[str, Type]) -> Env:
    return {
        name: Var(t, f"bound by {step.type} step '{step.id}' for its steps")
        for name, t in adds.items()
    }


def _merged(old: Env | None, new: Env) -> Env | None:
    """``old`` joined with ``new``, or None when that changes nothing."""
    if old is None:
        return dict(new)
    merged: Env | None = None
    for name, var in new.items():
        have = old.get(name)
        if have == var:
            continue
        if have is None:
            joined = var
        else:
            origin = have.origin if have.origin == var.origin else None
            joined = Var(join(have.type, var.type), origin)
            if joined == have:
                continue
        if merged is None:
            merged = dict(old)
        merged[name] = joined
    return merged


def _join_into(env: Env, new: Env) -> bool:
    """Join ``new`` into ``env`` in place; whether that changed it."""
    changed = False
    for name, var in new.items():
        have = env.get(name)
        if have == var:
            continue
        if have is not None:
            origin = have.origin if have.origin == var.origin else None
            var = Var(join(have.type, var.type), origin)
            if var == have:
                continue
        env[name] = var
        changed = True
    return changed


def _names_read(lists: list[StepList]) -> frozenset[str]:
    """Every name an expression or a template of the definition reads."""
    found: set[str] = set()
    for steps in lists:
        for index, step in enumerate(steps.steps):
            if index in steps.opaque:
                continue
            kind = kind_of(step)
            for _, expression in kind.expressions(step):
                found.update(names_read(expression))
            try:
                for value in kind.templated(step).values():
                    found.update(ref.root for _, ref in references_in(value))
            except TemplateError:
                continue
    return frozenset(found)


def lookup(env: Env, name: str) -> Var | None:
    if ANY_NAME in env:
        return Var(DYN)
    return env.get(name)


class _Typer:
    """What a kind's ``result_types`` and ``scope_types`` ask, at one step."""

    def __init__(self, checks: _TypeChecks, env: Env, where: str) -> None:
        self._checks = checks
        self._env = env
        self._where = where

    def value(self, template: Any) -> Type:
        return value_type(template, self._env)

    def expression(self, expression: str) -> Type:
        try:
            compile_condition(expression)
        except ConditionError:
            return DYN
        result, _ = infer(expression, _scope(expression, self._env))
        return as_json(result)

    def scope_binds(self, step: Any, index: int) -> dict[str, Type]:
        kind = kind_of(step)
        scope = kind.scopes(step)[index]
        inner = dict(self._env)
        inner.update(self._checks.tracked_only(_added(step, kind.scope_types(step, self)[index])))
        return self._checks.scope_binds(f"{self._where}{scope.path}", inner)


def value_type(template: Any, env: Env, depth: int = 0) -> Type:
    """The type a templated value renders to: a whole reference keeps the type of what it
    names, other text is text, literals are themselves."""
    if depth > 8:
        return DYN
    if isinstance(template, str):
        reference = whole_reference(template)
        if reference is None:
            return STRING_T
        var = lookup(env, reference.root)
        if var is None:
            return DYN
        reached, _ = at_path(var.type, reference.segments[1:], reference.root)
        return reached
    if isinstance(template, dict):
        return object_of({str(k): value_type(v, env, depth + 1) for k, v in template.items()})
    if isinstance(template, list):
        return list_of(join_all(value_type(item, env, depth + 1) for item in template))
    return of_literal(template)


def whole_reference(template: str) -> Reference | None:
    """The reference a template is exactly (``"{order}"``), secrets aside."""
    if "{" not in template:
        return None
    tokens = tokenize(template)
    if len(tokens) == 1 and isinstance(tokens[0], Reference):
        return tokens[0] if tokens[0].root not in DEFERRED_ROOTS else None
    return None


def _scope(expression: str, env: Env) -> dict[str, Type]:
    scope: dict[str, Type] = {}
    for name in names_read(expression):
        var = lookup(env, name)
        if var is not None:
            scope[name] = var.type
    return scope


class _StepChecks:
    """The type checks of one step, with the types it sees."""

    def __init__(self, step: Step, where: str, env: Env) -> None:
        self._step = step
        self._where = where
        self._env = env

    def problems(self) -> list[Problem]:
        kind = kind_of(self._step)
        found: list[Problem] = []
        for relative, expression in kind.expressions(self._step):
            found += self._expression(f"{self._where}{relative}", expression, relative)
        try:
            for field, value in kind.templated(self._step).items():
                for path, reference in references_in(value, f"{self._where}.{field}"):
                    found += self._reference(path, reference)
        except TemplateError:
            pass  # the reference checks report it
        found += self._whole_values()
        return found

    def _problem(self, path: str, message: str, code: str = "type_error") -> Problem:
        return Problem(path, f"step '{self._step.id}': {message}", code=code)

    def _expression(self, path: str, expression: str, relative: str) -> list[Problem]:
        try:
            compile_condition(expression)
        except ConditionError:
            return []  # the kind's own checks report it
        result, findings = infer(expression, _scope(expression, self._env))
        found = [self._finding(path, expression, finding) for finding in findings]
        gives_bool = result.never or result.has(BOOL)
        if relative.endswith(".when") and not findings and not gives_bool:
            found.append(self._not_bool(path, expression, result))
        return found

    def _finding(self, path: str, expression: str, finding: Finding) -> Problem:
        line, column = position(expression, finding.offset)
        source = expression.splitlines()[line - 1] if expression.strip() else expression
        hints = [origin_hint(name, lookup(self._env, name)) for name in finding.names]
        hints.append(finding.hint)
        shown = "; ".join(dict.fromkeys(h for h in hints if h))
        message = f"{finding.message}\n  {source}\n  {' ' * (column - 1)}^"
        if shown:
            message += f"\nhint: {shown}"
        return self._problem(path, message, finding.code)

    def _not_bool(self, path: str, expression: str, result: Type) -> Problem:
        from workflows import cel_hints

        hint = cel_hints.not_bool(expression if len(expression) < 40 else "…", result)
        message = (
            f"the condition {expression!r} gives {a(result)}, not a bool: a branch's when "
            "must be true or false, so this fails whenever it runs"
        )
        return self._problem(path, message + (f"\nhint: {hint}" if hint else ""))

    def _reference(self, path: str, reference: Reference) -> list[Problem]:
        var = lookup(self._env, reference.root)
        if reference.root in DEFERRED_ROOTS or var is None:
            return []
        _, why = at_path(var.type, reference.segments[1:], reference.root)
        if why is None:
            return []
        message, code = why
        hint = origin_hint(reference.root, var)
        text = f"{{{reference.path}}} cannot be resolved: {message}"
        return [self._problem(path, text + (f"\nhint: {hint}" if hint else ""), code)]

    def _whole_values(self) -> list[Problem]:
        step = self._step
        if isinstance(step, ForeachStep) and isinstance(step.items, str):
            return self._items(step.items)
        if isinstance(step, DelayStep) and isinstance(step.seconds, str):
            return self._seconds(step.seconds)
        if isinstance(step, DelayStep) and isinstance(step.until, str):
            return self._until(step.until)
        return []

    def _items(self, items: str) -> list[Problem]:
        path = f"{self._where}.items"
        reference = whole_reference(items)
        if reference is None:
            if any(isinstance(t, Reference) and t.root in DEFERRED_ROOTS for t in tokenize(items)):
                return []  # the reference checks refuse secrets here
            return [
                self._problem(
                    path,
                    f"items {items!r} renders as text, not a list: foreach fails whenever it "
                    'runs\nhint: give exactly one reference to a list ("{orders}"), or a '
                    "literal list",
                )
            ]
        found = value_type(items, self._env)
        if found.never or LIST in found.kinds:
            return []
        return [self._wrong(path, "items", items, found, "a list: foreach fails", reference)]

    def _seconds(self, seconds: str) -> list[Problem]:
        wrong = (NULL, LIST, MAP)
        return self._delay_field(
            "seconds", seconds, _number_text, "is not a number", wrong, "a number"
        )

    def _until(self, until: str) -> list[Problem]:
        wrong = (*NUMBER.kinds, "uint", BOOL, NULL, LIST, MAP)
        not_parsed = "is not an ISO 8601 time with a zone (e.g. 2030-01-01T09:00:00Z)"
        wanted = "ISO 8601 text"
        return self._delay_field("until", until, _timestamp_text, not_parsed, wrong, wanted)

    def _delay_field(
        self,
        field: str,
        template: str,
        parses: Callable[[str], bool],
        not_parsed: str,
        wrong: tuple[str, ...],
        wanted: str,
    ) -> list[Problem]:
        """A delay's time: literal text that must parse, or one reference of the right type."""
        path = f"{self._where}.{field}"
        reference = whole_reference(template)
        if reference is None:
            tokens = tokenize(template)
            if all(isinstance(t, Literal) for t in tokens):
                text = "".join(t.text for t in tokens if isinstance(t, Literal))
                if not parses(text):
                    return [self._problem(path, f"{field} {template!r} {not_parsed}")]
            return []
        found = value_type(template, self._env)
        if found.only(*wrong):
            wanted += ": the delay fails"
            return [self._wrong(path, field, template, found, wanted, reference)]
        return []

    def _wrong(
        self, path: str, field: str, template: str, found: Type, wanted: str, reference: Reference
    ) -> Problem:
        hint = origin_hint(reference.root, lookup(self._env, reference.root))
        message = f"{field} {template!r} is {a(found)}, not {wanted} whenever it runs"
        return self._problem(path, message + (f"\nhint: {hint}" if hint else ""))


def _number_text(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _timestamp_text(text: str) -> bool:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.tzinfo is not None
