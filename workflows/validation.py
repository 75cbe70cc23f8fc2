"""Whole-document checks of a workflow definition, each problem located by its JSON path.

Order: shape (pydantic) first; when the shape is valid, the checks that need the whole
document: duplicate and reserved ids, jump targets, each kind's own checks (JSON Schemas, CEL
syntax, headers), reachability, loops with no way out, and variable references (a data-flow
pass: a name is available at a step when some path from the first step of its list to it
passes an input, a name of an enclosing scope, or a step that sets it).

Every nested list of steps (a `parallel` branch, a `foreach` body) is a scope of its own
(SPEC §9): its jumps stay inside it and its names come out only through the holding step's
``output``. What a kind reads, binds and jumps to comes from its module (workflows/kinds/).

Graph work within a list is iterative, so a 5,000-step list cannot cause a RecursionError;
nesting recurses, bounded by the document depth limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from workflows.cel_errors import unknown_names
from workflows.conditions import condition_variables
from workflows.definition import WebhookTrigger, WorkflowDefinition
from workflows.errors import FAILURE_TYPES, DefinitionError, Problem, TemplateError, json_path
from workflows.input_schema import declarations, schema_problems
from workflows.kinds import STEP_TYPES, Step, kind_of
from workflows.kinds.base import Edge
from workflows.kinds.common import END, ENGINE_VARIABLES, LAST_ERROR, RESERVED_VARIABLES
from workflows.kinds.http import FORBIDDEN_REQUEST_HEADERS, header_problem
from workflows.templating import DEFERRED_ROOTS, references_in

__all__ = [
    "FORBIDDEN_REQUEST_HEADERS",
    "check_definition",
    "declared_inputs",
    "header_problem",
    "json_path",
    "load_definition",
    "semantic_problems",
]

MAX_DOCUMENT_DEPTH = 64
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


def check_definition(document: Any) -> tuple[WorkflowDefinition | None, list[Problem]]:
    """Return the parsed definition (if the shape is valid) and the list of problems."""
    if not isinstance(document, dict):
        return None, [Problem("$", "a workflow definition must be a JSON object")]
    too_deep = _depth_problem(document)
    if too_deep:
        return None, [too_deep]
    try:
        definition = WorkflowDefinition.model_validate(document)
    except ValidationError as err:
        return None, _shape_problems(err, document)
    return definition, semantic_problems(definition)


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


@dataclass(frozen=True)
class _List:
    """One list of steps: the top level or a scope a step holds (JSON path ``where``)."""

    where: str  # e.g. "$.steps" or "$.steps[2].branches[1].steps"
    steps: Sequence[Step]
    ids: dict[str, int]

    def at(self, index: int) -> str:
        return f"{self.where}[{index}]"


def _lists(definition: WorkflowDefinition) -> list[tuple[_List, set[str]]]:
    """Every list of steps in the document, outermost first, with the names each scope adds."""
    found: list[tuple[_List, set[str]]] = []
    work: list[tuple[str, Sequence[Step], set[str]]] = [("$.steps", definition.steps, set())]
    while work:
        where, steps, adds = work.pop(0)
        found.append((_List(where, steps, {s.id: i for i, s in enumerate(steps)}), adds))
        for index, step in enumerate(steps):
            for scope in kind_of(step).scopes(step):
                work.append((f"{where}[{index}]{scope.path}", scope.steps, set(scope.adds)))
    return found


def semantic_problems(definition: WorkflowDefinition) -> list[Problem]:
    """Checks that need the whole document; the definition's shape is already valid."""
    problems: list[Problem] = []
    lists = _lists(definition)
    seen: dict[str, str] = {}
    for steps, _ in lists:
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
    problems += _trigger_problems(definition)
    for steps, _ in lists:
        problems += _target_problems(steps)
    if definition.inputs is not None:
        problems += schema_problems(definition.inputs, "$.inputs")
    for steps, _ in lists:
        for index, step in enumerate(steps.steps):
            problems += _route_problems(step, steps.at(index))
            problems += kind_of(step).problems(step, steps.at(index))
    if problems:
        return problems
    graphs = {steps.where: successors(steps.steps) for steps, _ in lists}
    for steps, _ in lists:
        problems += _reachability_problems(steps, graphs[steps.where])
    for steps, _ in lists:
        problems += _loop_problems(steps, graphs[steps.where])
    problems += _reference_problems(definition, graphs)
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


def _target_problems(steps: _List) -> list[Problem]:
    problems = []
    nested = steps.where != "$.steps"
    for index, step in enumerate(steps.steps):
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


Graph = list[list[tuple[int, bool]]]  # per step: (successor index or -1 for the end, on failure)


def successors(steps: Sequence[Step]) -> Graph:
    """Control-flow edges of one list by step index; -1 stands for the end of the list."""
    ids = {step.id: index for index, step in enumerate(steps)}
    count = len(steps)
    graph: Graph = []
    for index, step in enumerate(steps):
        following = index + 1 if index + 1 < count else -1
        edges: set[tuple[int, bool]] = set()
        for edge in kind_of(step).successors(step):
            edges.add((_index(edge, ids, following), edge.on_failure))
        graph.append(sorted(edges))
    return graph


def _index(edge: Edge, ids: dict[str, int], following: int) -> int:
    if edge.target is None:
        return following
    return -1 if edge.target == END else ids[edge.target]


def _reachability_problems(steps: _List, graph: Graph) -> list[Problem]:
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


def _loop_problems(steps: _List, graph: Graph) -> list[Problem]:
    """A set of steps that can only lead back into itself runs forever: reject it."""
    problems = []
    plain = [[target for target, _ in edges] for edges in graph]
    for component in _strongly_connected(plain):
        members = set(component)
        looping = len(component) > 1 or component[0] in plain[component[0]]
        if not looping:
            continue
        has_exit = any(
            target < 0 or target not in members for node in component for target in plain[node]
        ) or any(not kind_of(steps.steps[n]).successors(steps.steps[n]) for n in component)
        if not has_exit:
            first = min(component)
            names = _some([steps.steps[i].id for i in sorted(component)])
            problems.append(
                Problem(
                    steps.at(first),
                    f"steps {names} form a loop with no way out; add a condition step "
                    "with a branch that leaves the loop",
                    code="unbounded_loop",
                )
            )
    return problems


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


def _reference_problems(definition: WorkflowDefinition, graphs: dict[str, Graph]) -> list[Problem]:
    """Every name a step reads must be bound on some path to it (SPEC §3), per scope."""
    problems: list[Problem] = []
    inputs = declared_inputs(definition) | ENGINE_VARIABLES
    work: list[tuple[str, Sequence[Step], set[str]]] = [("$.steps", definition.steps, inputs)]
    while work:
        where, steps, outer = work.pop(0)
        listed = _List(where, steps, {s.id: i for i, s in enumerate(steps)})
        available = _available_names(steps, graphs[where])
        for index, step in enumerate(steps):
            kind = kind_of(step)
            here = listed.at(index)
            for name in sorted(kind.binds(step) & RESERVED_VARIABLES):
                problems.append(
                    Problem(
                        here,
                        f"step '{step.id}' sets '{name}', a reserved name; choose another",
                        code="reserved_variable",
                    )
                )
            known = outer | available[index]
            problems += _step_reference_problems(step, here, known)
            for scope in kind.scopes(step):
                work.append((f"{here}{scope.path}", scope.steps, known | set(scope.adds)))
    return problems


def _step_reference_problems(step: Step, where: str, known: set[str]) -> list[Problem]:
    kind = kind_of(step)
    problems: list[Problem] = []
    uses: list[tuple[str, str, bool]] = []  # (path, reference, secret allowed)
    expression_of: dict[str, str] = {}  # path -> the CEL expression there (not a template)
    try:
        for field, value in kind.templated(step).items():
            for path, ref in references_in(value, f"{where}.{field}"):
                uses.append((path, ref.path, kind.secrets))
    except TemplateError as err:
        return [Problem(where, f"step '{step.id}': {err}")]
    for relative, expression in kind.expressions(step):
        expression_of[f"{where}{relative}"] = expression
        for name in sorted(condition_variables(expression)):
            uses.append((f"{where}{relative}", name, False))
    for path, ref_path, secret_allowed in uses:
        root = ref_path.split(".")[0]
        if root in DEFERRED_ROOTS:
            if not secret_allowed:
                problems.append(
                    Problem(
                        path,
                        f"step '{step.id}': {{{ref_path}}} can only be used in ai and "
                        "http steps (secrets are resolved inside activities only)",
                        code="invalid_reference",
                    )
                )
            elif ref_path.count(".") != 1:
                problems.append(
                    Problem(
                        path,
                        f"step '{step.id}': write a secret as {{secrets.NAME}}, not {{{ref_path}}}",
                        code="invalid_reference",
                    )
                )
            continue
        if root not in known and path in expression_of:
            problems.append(_unknown_in_expression(step, path, expression_of[path], root))
        elif root not in known:
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


def _unknown_in_expression(step: Step, path: str, expression: str, name: str) -> Problem:
    """A CEL expression reading a name no input declares and no earlier step sets (CEL has
    no braces: the templates' advice does not apply)."""
    message = unknown_names(expression, [name])
    if name == LAST_ERROR:
        message += "\nhint: last_error is bound only after a failure that on_error routes"
    else:
        message += "\nhint: declare it under inputs.properties, or fix the name"
    return Problem(path, f"step '{step.id}': {message}", code="unknown_reference")


def _available_names(steps: Sequence[Step], graph: Graph) -> list[set[str]]:
    """For each step, the names some path from the list's first step may have bound before
    it; a failure routed by on_error brings ``last_error`` (and not the step's own names)."""
    count = len(steps)
    defines = [kind_of(step).binds(step) for step in steps]
    available: list[set[str]] = [set() for _ in range(count)]
    # A step is (re)visited the first time it is reached and whenever more names reach it,
    # so steps after one that binds nothing (a delay, an http step without output) count too.
    visited = {0}
    work = [0]
    while work:
        node = work.pop()
        succeeded = available[node] | defines[node]
        failed = available[node] | {LAST_ERROR}
        for target, on_failure in graph[node]:
            if target < 0:
                continue
            outgoing = failed if on_failure else succeeded
            if target not in visited or not outgoing <= available[target]:
                visited.add(target)
                available[target] |= outgoing
                work.append(target)
    return available
