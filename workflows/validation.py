"""Whole-document checks of a workflow definition, each problem located by its JSON path.

Every check runs, and the answer lists every problem at once. Shape (pydantic) first; when a
step's shape is invalid, the rest of the document is still checked, with that step opaque
(workflows/salvage.py). Then the checks that need the whole document: duplicate and reserved
ids, triggers, jump targets, failure types, each kind's own checks (JSON Schemas, CEL syntax,
headers), reachability, loops with no way out, variable references (a data-flow pass: a name
is available at a step when some path from the first step of its list to it passes an input,
a name of an enclosing scope, or a step that sets it), and types (workflows/type_checks.py).
A check that needs what another found wrong works around it: a jump to an unknown step may
lead anywhere in its list (workflows/step_graph.py), an expression that does not compile is
not read for names or types.

Every nested list of steps (a `parallel` branch, a `foreach` body) is a scope of its own: its
jumps stay inside it and its names come out only through the holding step's ``output``. What a
kind reads, binds and jumps to comes from its module (workflows/kinds/).

Graph work within a list is iterative, so a 5,000-step list cannot cause a RecursionError;
nesting recurses, bounded by the document depth limit.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from pydantic import ValidationError

from workflows.cel_errors import unknown_names
from workflows.conditions import compile_condition, condition_variables
from workflows.definition import WebhookTrigger, WorkflowDefinition
from workflows.errors import (
    FAILURE_TYPES,
    ConditionError,
    DefinitionError,
    Problem,
    TemplateError,
    json_path,
)
from workflows.input_schema import declarations, schema_problems
from workflows.kinds import STEP_TYPES, Step, kind_of
from workflows.kinds.common import END, ENGINE_VARIABLES, LAST_ERROR, RESERVED_VARIABLES
from workflows.kinds.http import FORBIDDEN_REQUEST_HEADERS, header_problem
from workflows.salvage import salvage
from workflows.step_graph import Opaque, StepList, step_lists, successors
from workflows.templating import DEFERRED_ROOTS, references_in
from workflows.type_checks import type_problems
from workflows.value_types import ANY_NAME

__all__ = [
    "FORBIDDEN_REQUEST_HEADERS",
    "check_definition",
    "declared_inputs",
    "header_problem",
    "json_path",
    "load_definition",
    "semantic_problems",
    "successors",
]

MAX_DOCUMENT_DEPTH = 64
NAME_WORK = 1_500_000
"""Names the reference pass carries through one list before it settles for the simpler rule
(``_available_names``): about a third of a second."""
_STEP_TYPES = ", ".join(STEP_TYPES)
_TRIGGER_TYPES = "schedule, webhook"


def _some(names: list[str], limit: int = 10) -> str:
    """A readable list that stays short for huge documents."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def load_definition(document: Any) -> WorkflowDefinition:
    """Validate a document and return the model, or raise DefinitionError with every problem."""
    definition, problems = check_definition(document)
    if problems or definition is None:
        raise DefinitionError(problems)
    return definition


def check_definition(
    document: Any, *, types: bool = True
) -> tuple[WorkflowDefinition | None, list[Problem]]:
    """Return the parsed definition (if the shape is valid) and every problem.

    ``types``: include the type checks (workflows/type_checks.py). A definition saved before
    them may fail them; a caller re-reading stored definitions can leave them out.
    """
    if not isinstance(document, dict):
        return None, [Problem("$", "a workflow definition must be a JSON object")]
    too_deep = _depth_problem(document)
    if too_deep:
        return None, [too_deep]
    try:
        definition = WorkflowDefinition.model_validate(document)
    except ValidationError as err:
        problems = _shape_problems(err, document)
        locations = [_clean_location(e["loc"], document) for e in err.errors(include_url=False)]
        salvaged = salvage(document, locations)
        if salvaged is not None:
            seen = {(p.path, p.message) for p in problems}
            found = semantic_problems(salvaged[0], salvaged[1], types=types)
            problems += [p for p in found if (p.path, p.message) not in seen]
        return None, problems
    return definition, semantic_problems(definition, types=types)


def _depth_problem(document: Any) -> Problem | None:
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        value, location = stack.pop()
        if len(location) > MAX_DOCUMENT_DEPTH:
            return Problem(
                json_path(location[:MAX_DOCUMENT_DEPTH]),
                f"nested deeper than {MAX_DOCUMENT_DEPTH} levels",
            )
        if isinstance(value, dict):
            stack.extend((item, [*location, str(key)]) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, [*location, index]) for index, item in enumerate(value))
    return None


def _shape_problems(err: ValidationError, document: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for error in err.errors(include_url=False):
        location = _clean_location(error["loc"], document)
        message = error["msg"]
        kinds = _TRIGGER_TYPES if location[:1] == ["triggers"] else _STEP_TYPES
        if error["type"] == "union_tag_not_found":
            location = [*location, "type"]
            message = f"missing 'type'; expected one of {kinds}"
        elif error["type"] == "union_tag_invalid":
            location = [*location, "type"]
            found = error.get("ctx", {}).get("tag")
            noun = "trigger" if kinds is _TRIGGER_TYPES else "step"
            message = f"unknown {noun} type {found!r}; expected one of {kinds}"
        elif error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see docs/workflow-definition.schema.json)"
        message = message.removeprefix("Value error, ")
        path = json_path(location)
        if (path, message) not in seen:
            seen.add((path, message))
            problems.append(Problem(path, _with_step(message, location, document)))
    return problems


def _clean_location(loc: tuple[Any, ...], document: dict[str, Any]) -> list[str | int]:
    """Drop pydantic's union-member names (``steps.2.http.url`` -> ``steps[2].url``), at any
    depth of nesting (``steps.0.parallel.branches.1.steps.0.http.url``)."""
    out: list[str | int] = []
    node: Any = document
    for part in loc:
        tag = isinstance(node, dict) and isinstance(part, str) and part not in node
        if tag and part == node.get("type") and len(out) >= 2 and isinstance(out[-1], int):
            continue  # the tagged union's member name: the item's own type
        if isinstance(part, str) and (
            part.startswith(("literal[", "function-"))
            or part in {"OnErrorNext", "OnErrorRoute", "int", "str", "list[OnErrorRoute]"}
        ):
            continue
        if part == "JsonSchemaFormat" or part == "JsonObjectFormat":
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part) if isinstance(part, str) else None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return out


def _with_step(message: str, location: list[str | int], document: dict[str, Any]) -> str:
    """Prefix a message with the id of the innermost step the path is inside."""
    node: Any = document
    step_id: str | None = None
    previous: str | int | None = None
    for part in location:
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            if previous == "steps" and isinstance(node, dict) and isinstance(node.get("id"), str):
                step_id = node["id"]
        else:
            break
        previous = part
    return f"step '{step_id}': {message}" if step_id else message


def semantic_problems(
    definition: WorkflowDefinition,
    opaque: Mapping[str, Opaque] | None = None,
    types: bool = True,
) -> list[Problem]:
    """Checks that need the whole document; its shape is valid, but for the ``opaque`` steps
    (by JSON path: their shape is not, workflows/salvage.py). Every check runs."""
    lists = step_lists(definition.steps, opaque or {})
    problems = _id_problems(lists)
    problems += _trigger_problems(definition)
    for steps in lists:
        problems += _target_problems(steps)
    inputs = [] if definition.inputs is None else schema_problems(definition.inputs, "$.inputs")
    problems += inputs
    for steps in lists:
        for index, step in enumerate(steps.steps):
            if index not in steps.opaque:
                problems += _route_problems(step, steps.at(index))
                problems += kind_of(step).problems(step, steps.at(index))
    for steps in lists:
        problems += _reachability_problems(steps)
    for steps in lists:
        problems += _loop_problems(steps)
    problems += _reference_problems(definition, lists)
    if types:
        problems += type_problems(definition, lists, inputs_valid=not inputs)
    return problems


def _id_problems(lists: list[StepList]) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for steps in lists:
        for index, step in enumerate(steps.steps):
            where = f"{steps.at(index)}.id"
            if step.id == END:
                problems.append(
                    Problem(where, f"'{END}' is reserved for finishing; rename the step")
                )
            elif step.id in seen:
                problems.append(
                    Problem(
                        where,
                        f"duplicate step id '{step.id}' (also used by {seen[step.id]})",
                        code="duplicate_step_id",
                    )
                )
            else:
                seen[step.id] = steps.at(index)
    return problems


def _route_problems(step: Step, where: str) -> list[Problem]:
    """``on_error`` rules name failure types that exist (docs/errors.md lists them)."""
    policy = getattr(step, "on_error", None)
    if not isinstance(policy, list):
        return []
    problems = []
    for i, rule in enumerate(policy):
        for j, name in enumerate(rule.errors or []):
            if name not in FAILURE_TYPES:
                problems.append(
                    Problem(
                        f"{where}.on_error[{i}].errors[{j}]",
                        f"step '{step.id}': unknown failure type {name!r}; expected one of "
                        f"{', '.join(sorted(FAILURE_TYPES))} (docs/errors.md)",
                        code="unknown_failure_type",
                    )
                )
    return problems


def _trigger_problems(definition: WorkflowDefinition) -> list[Problem]:
    problems = []
    seen: dict[str, int] = {}
    webhooks = 0
    for index, trigger in enumerate(definition.triggers):
        if isinstance(trigger, WebhookTrigger):
            webhooks += 1
            if webhooks > 1:
                problems.append(
                    Problem(f"$.triggers[{index}]", "a workflow has at most one webhook trigger")
                )
            problems += _filter_problems(trigger, f"$.triggers[{index}].filter")
            continue
        trigger_id = trigger.id or f"schedule-{index}"
        if trigger_id in seen:
            problems.append(
                Problem(
                    f"$.triggers[{index}].id",
                    f"duplicate trigger id '{trigger_id}' (also $.triggers[{seen[trigger_id]}])",
                )
            )
        seen[trigger_id] = index
    return problems


# What a webhook trigger's filter reads: the delivery's headers and its parsed body.
FILTER_NAMES = frozenset({"headers", "body"})


def _filter_problems(trigger: WebhookTrigger, where: str) -> list[Problem]:
    """A filter is CEL like every condition: it must compile and read only the delivery."""
    if trigger.filter is None:
        return []
    try:
        compile_condition(trigger.filter)
    except ConditionError as err:
        return [Problem(where, f"webhook filter: {err}", code="invalid_condition")]
    unknown = sorted(condition_variables(trigger.filter) - FILTER_NAMES)
    if unknown:
        message = unknown_names(trigger.filter, unknown)
        hint = "\nhint: a filter reads `headers` (lower-case names) and `body` only"
        return [Problem(where, f"webhook filter: {message}{hint}", code="unknown_reference")]
    return []


def _target_problems(steps: StepList) -> list[Problem]:
    problems = []
    nested = steps.where != "$.steps"
    for index, step in enumerate(steps.steps):
        if index in steps.opaque:
            continue
        for field, target in kind_of(step).jumps(step):
            if target != END and target not in steps.ids:
                scope = " in this list (a nested list jumps only within itself)" if nested else ""
                problems.append(
                    Problem(
                        f"{steps.at(index)}{field}",
                        f"step '{step.id}' jumps to unknown step '{target}' "
                        f'(known{scope}: {_some(sorted(steps.ids))}, or "end")',
                        code="unknown_next",
                    )
                )
    return problems


def _reachability_problems(steps: StepList) -> list[Problem]:
    graph = steps.graph
    reached = {0}
    stack = [0]
    while stack:
        for target, _ in graph[stack.pop()]:
            if target >= 0 and target not in reached:
                reached.add(target)
                stack.append(target)
    return [
        Problem(
            steps.at(index),
            f"step '{step.id}' can never run: no step leads to it (the step before it "
            "ends or jumps elsewhere, and no next/branch/on_error names it)",
            code="unreachable_step",
        )
        for index, step in enumerate(steps.steps)
        if index not in reached
    ]


def _loop_problems(steps: StepList) -> list[Problem]:
    """A set of steps that can only lead back into itself runs forever: reject it."""
    problems = []
    plain = [[target for target, _ in edges] for edges in steps.graph]
    count = len(steps.steps)
    for component in _strongly_connected(plain):
        members = set(component)
        looping = len(component) > 1 or component[0] in plain[component[0]]
        if not looping:
            continue
        has_exit = any(
            target < 0 or target not in members for node in component for target in plain[node]
        ) or any(_ends(steps, node) for node in component if node < count)
        if not has_exit:
            first = min(component)
            names = _some([steps.steps[i].id for i in sorted(component) if i < count])
            problems.append(
                Problem(
                    steps.at(first),
                    f"steps {names} form a loop with no way out; add a condition step "
                    "with a branch that leaves the loop",
                    code="unbounded_loop",
                )
            )
    return problems


def _ends(steps: StepList, index: int) -> bool:
    """The step has no way on (a `fail` step): a loop through it ends there."""
    if index in steps.opaque:
        return True
    step = steps.steps[index]
    return not kind_of(step).successors(step)


def _strongly_connected(graph: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative."""
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(len(graph)):
        if root in index_of:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, edge = work.pop()
            if edge == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            targets = [t for t in graph[node] if t >= 0]
            while edge < len(targets):
                target = targets[edge]
                edge += 1
                if target not in index_of:
                    work.append((node, edge))
                    work.append((target, 0))
                    recurse = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index_of[target])
            if recurse:
                continue
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def declared_inputs(definition: WorkflowDefinition) -> set[str]:
    """The input names steps may read: those the `inputs` schema declares, wherever it
    declares them (composition and `$ref` included; workflows/input_schema.py)."""
    if definition.inputs is None:
        return set()
    return set(declarations(definition.inputs).names)


def _reference_problems(definition: WorkflowDefinition, lists: list[StepList]) -> list[Problem]:
    """Every name a step reads must be bound on some path to it, per scope."""
    problems: list[Problem] = []
    outer: dict[str, set[str]] = {"$.steps": declared_inputs(definition) | ENGINE_VARIABLES}
    for steps in lists:
        available = _available_names(steps)
        for index, step in enumerate(steps.steps):
            if index in steps.opaque:
                continue
            kind = kind_of(step)
            here = steps.at(index)
            for name in sorted(kind.binds(step) & RESERVED_VARIABLES):
                problems.append(
                    Problem(
                        here,
                        f"step '{step.id}' sets '{name}', a reserved name; choose another",
                        code="reserved_variable",
                    )
                )
            known = _Names(outer[steps.where], available[index])
            problems += _step_reference_problems(step, here, known)
            for scope in kind.scopes(step):
                outer[f"{here}{scope.path}"] = known.both() | set(scope.adds)
    return problems


class _Names:
    """The names a step may read: those around its list and those bound before it (two sets
    looked up in turn, not joined: in a list of thousands of steps both are large)."""

    def __init__(self, around: set[str], before: set[str]) -> None:
        self._around = around
        self._before = before

    def __contains__(self, name: object) -> bool:
        return name in self._before or name in self._around

    def both(self) -> set[str]:
        return self._around | self._before


def _step_reference_problems(step: Step, where: str, known: Container[str]) -> list[Problem]:
    problems: list[Problem] = []
    try:
        uses, expression_of = _uses(step, where)
    except TemplateError as err:
        return [Problem(where, f"step '{step.id}': {err}")]
    for path, ref_path, secret_allowed in uses:
        root = ref_path.split(".")[0]
        if root in DEFERRED_ROOTS:
            problems += _secret_problems(step, path, ref_path, secret_allowed)
        elif ANY_NAME in known or root in known:
            continue  # (after a step whose shape is invalid, any name may be bound)
        elif path in expression_of:
            problems.append(_unknown_in_expression(step, path, expression_of[path], root))
        else:
            hint = (
                " (last_error is bound only after a failure that on_error routes)"
                if root == LAST_ERROR
                else ""
            )
            problems.append(
                Problem(
                    path,
                    f"step '{step.id}' references '{{{ref_path}}}' but no input declares "
                    f"'{root}' and no earlier step sets it as output; declare it under "
                    "inputs.properties, fix the name, or write {{ }} for literal braces" + hint,
                    code="unknown_reference",
                )
            )
    return problems


def _uses(step: Step, where: str) -> tuple[list[tuple[str, str, bool]], dict[str, str]]:
    """What a step reads: (path, reference, secrets allowed), and the CEL expression at each
    path that holds one (not a template). Raises TemplateError for a template that does not
    parse."""
    kind = kind_of(step)
    uses: list[tuple[str, str, bool]] = []
    expression_of: dict[str, str] = {}
    for field, value in kind.templated(step).items():
        for path, ref in references_in(value, f"{where}.{field}"):
            uses.append((path, ref.path, kind.secrets))
    for relative, expression in kind.expressions(step):
        try:
            names = condition_variables(expression)
        except ConditionError:
            continue  # the kind's own checks report it; what it reads cannot be known
        expression_of[f"{where}{relative}"] = expression
        for name in sorted(names):
            uses.append((f"{where}{relative}", name, False))
    return uses, expression_of


def _secret_problems(step: Step, path: str, ref_path: str, allowed: bool) -> list[Problem]:
    if not allowed:
        message = (
            f"step '{step.id}': {{{ref_path}}} can only be used in ai and http steps (secrets "
            "are resolved inside activities only)"
        )
    elif ref_path.count(".") != 1:
        message = f"step '{step.id}': write a secret as {{secrets.NAME}}, not {{{ref_path}}}"
    else:
        return []
    return [Problem(path, message, code="invalid_reference")]


def _unknown_in_expression(step: Step, path: str, expression: str, name: str) -> Problem:
    """A CEL expression reading a name no input declares and no earlier step sets (CEL has
    no braces: the templates' advice does not apply)."""
    message = unknown_names(expression, [name])
    if name == LAST_ERROR:
        message += "\nhint: last_error is bound only after a failure that on_error routes"
    else:
        message += "\nhint: declare it under inputs.properties, or fix the name"
    return Problem(path, f"step '{step.id}': {message}", code="unknown_reference")


def _available_names(steps: StepList) -> list[set[str]]:
    """For each step, the names some path from the list's first step may have bound before
    it; a failure routed by on_error brings ``last_error`` (and not the step's own names).

    Past :data:`NAME_WORK` names carried (a list of thousands of steps each binding a name,
    or a jump that leads anywhere in a long list), every name the list binds counts as
    available at every step: fewer unknown names found there, never a false one."""
    graph = steps.graph
    count = len(graph)
    defines = [steps.binds(node) for node in range(count)]
    available: list[set[str]] = [set() for _ in range(count)]
    # A step is (re)visited the first time it is reached and whenever more names reach it,
    # so steps after one that binds nothing (a delay, an http step without output) count too.
    visited = {0}
    work = [0]
    left = NAME_WORK
    while work:
        node = work.pop()
        succeeded = available[node] | defines[node]
        failed = available[node] | {LAST_ERROR}
        for target, on_failure in graph[node]:
            if target < 0:
                continue
            outgoing = failed if on_failure else succeeded
            if target not in visited or not outgoing <= available[target]:
                left -= len(outgoing)
                if left < 0:
                    return [set().union(*defines, {LAST_ERROR})] * count
                visited.add(target)
                available[target] |= outgoing
                work.append(target)
    return available
