"""Whole-document checks of a workflow definition, each problem located by its JSON path.

Order: shape (pydantic) first; when the shape is valid, the checks that need the whole
document: duplicate and reserved ids, jump targets, reachability, loops with no way out,
JSON Schemas, CEL syntax, and variable references (a data-flow pass: a name is available at a
step when some path from the first step to it passes an input or a step that sets it).

All graph work is iterative, so a 5,000-step document cannot cause a RecursionError.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from workflows.conditions import compile_condition, condition_variables
from workflows.definition import (
    END,
    RESERVED_VARIABLES,
    AIStep,
    ConditionStep,
    DelayStep,
    FailStep,
    HTTPStep,
    OnErrorNext,
    SetStep,
    Step,
    WaitForSignalStep,
    WebhookTrigger,
    WorkflowDefinition,
)
from workflows.errors import ConditionError, DefinitionError, Problem, TemplateError
from workflows.input_schema import schema_problems
from workflows.templating import DEFERRED_ROOTS, references_in

MAX_DOCUMENT_DEPTH = 64
_STEP_TYPES = "ai, http, set, condition, delay, wait_for_signal, fail"
_TRIGGER_TYPES = "schedule, webhook"

# Request headers an `http` step may not set (checked here at save and again in the
# activity): the transport derives them from the URL and the body. `Host` would address
# another virtual host than the one the SSRF guard checked; the others frame the message or
# the connection, and a step setting them could desynchronise it (request smuggling) or hang.
FORBIDDEN_REQUEST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "http2-settings",
    }
)
# RFC 9110 field-name: a token.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _some(names: list[str], limit: int = 10) -> str:
    """A readable list that stays short for huge documents."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def json_path(location: Iterable[str | int]) -> str:
    out = "$"
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


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
    """Drop pydantic's union-member names (``steps.2.http.url`` -> ``steps[2].url``)."""
    out: list[str | int] = []
    for index, part in enumerate(loc):
        if index == 2 and loc[0] in ("steps", "triggers") and isinstance(loc[1], int):
            items = document.get(loc[0])
            item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
            if isinstance(item, dict) and part == item.get("type"):
                continue
        if isinstance(part, str) and (
            part.startswith(("literal[", "function-")) or part in {"OnErrorNext", "int", "str"}
        ):
            continue
        if part == "JsonSchemaFormat" or part == "JsonObjectFormat":
            continue
        out.append(part)
    return out


def _with_step(message: str, location: list[str | int], document: dict[str, Any]) -> str:
    """Prefix a message with the step id when the path is inside a step."""
    if len(location) >= 2 and location[0] == "steps" and isinstance(location[1], int):
        steps = document.get("steps")
        if isinstance(steps, list) and location[1] < len(steps):
            step = steps[location[1]]
            if isinstance(step, dict) and isinstance(step.get("id"), str):
                return f"step '{step['id']}': {message}"
    return message


def semantic_problems(definition: WorkflowDefinition) -> list[Problem]:
    """Checks that need the whole document; the definition's shape is already valid."""
    problems: list[Problem] = []
    ids: dict[str, int] = {}
    for index, step in enumerate(definition.steps):
        where = f"$.steps[{index}].id"
        if step.id == END:
            problems.append(Problem(where, f"'{END}' is reserved for finishing; rename the step"))
        elif step.id in ids:
            problems.append(
                Problem(
                    where,
                    f"duplicate step id '{step.id}' (also used by $.steps[{ids[step.id]}])",
                    code="duplicate_step_id",
                )
            )
        else:
            ids[step.id] = index
    problems += _trigger_problems(definition)
    problems += _target_problems(definition, ids)
    problems += _schema_problems(definition)
    problems += _header_problems(definition)
    problems += _condition_problems(definition)
    if problems:
        return problems
    graph = successors(definition)
    problems += _reachability_problems(definition, graph)
    problems += _loop_problems(definition, graph)
    problems += _reference_problems(definition, graph)
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


def _targets(step: Step) -> list[tuple[str, str]]:
    """(field path relative to the step, target id) for every jump a step declares."""
    found: list[tuple[str, str]] = []
    if isinstance(step, ConditionStep):
        found += [(f".branches[{i}].next", b.next) for i, b in enumerate(step.branches)]
        if step.default is not None:
            found.append((".default", step.default))
        return found
    next_target = getattr(step, "next", None)
    if next_target is not None:
        found.append((".next", next_target))
    on_error = getattr(step, "on_error", None)
    if isinstance(on_error, OnErrorNext):
        found.append((".on_error.next", on_error.next))
    return found


def _target_problems(definition: WorkflowDefinition, ids: dict[str, int]) -> list[Problem]:
    problems = []
    for index, step in enumerate(definition.steps):
        for field, target in _targets(step):
            if target != END and target not in ids:
                problems.append(
                    Problem(
                        f"$.steps[{index}]{field}",
                        f"step '{step.id}' jumps to unknown step '{target}' "
                        f'(known: {_some(sorted(ids))}, or "end")',
                        code="unknown_next",
                    )
                )
    return problems


def successors(definition: WorkflowDefinition) -> list[list[int]]:
    """Control-flow edges by step index; -1 stands for the end of the execution."""
    ids = definition.step_index()
    count = len(definition.steps)

    def index_of(target: str) -> int:
        return -1 if target == END else ids[target]

    graph: list[list[int]] = []
    for index, step in enumerate(definition.steps):
        following = index + 1 if index + 1 < count else -1
        edges: list[int] = []
        if isinstance(step, FailStep):
            pass
        elif isinstance(step, ConditionStep):
            edges += [index_of(b.next) for b in step.branches]
            edges.append(index_of(step.default) if step.default else following)
        else:
            edges.append(index_of(step.next) if step.next else following)
            if isinstance(step.on_error, OnErrorNext):
                edges.append(index_of(step.on_error.next))
        graph.append(sorted(set(edges)))
    return graph


def _reachability_problems(definition: WorkflowDefinition, graph: list[list[int]]) -> list[Problem]:
    reached = {0}
    stack = [0]
    while stack:
        for target in graph[stack.pop()]:
            if target >= 0 and target not in reached:
                reached.add(target)
                stack.append(target)
    return [
        Problem(
            f"$.steps[{index}]",
            f"step '{step.id}' can never run: no step leads to it (the step before it "
            "ends or jumps elsewhere, and no next/branch/on_error names it)",
            code="unreachable_step",
        )
        for index, step in enumerate(definition.steps)
        if index not in reached
    ]


def _loop_problems(definition: WorkflowDefinition, graph: list[list[int]]) -> list[Problem]:
    """A set of steps that can only lead back into itself runs forever: reject it."""
    problems = []
    for component in _strongly_connected(graph):
        members = set(component)
        looping = len(component) > 1 or component[0] in graph[component[0]]
        if not looping:
            continue
        has_exit = any(
            target < 0 or target not in members for node in component for target in graph[node]
        ) or any(isinstance(definition.steps[node], FailStep) for node in component)
        if not has_exit:
            first = min(component)
            names = _some([definition.steps[i].id for i in sorted(component)])
            problems.append(
                Problem(
                    f"$.steps[{first}]",
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


def header_problem(name: str, value: str | None = None) -> str | None:
    """Why an `http` step may not send this header, or None (shared with the activity)."""
    if not HEADER_NAME.fullmatch(name):
        return f"{name!r} is not a valid header name (letters, digits and !#$%&'*+.^_`|~-)"
    if name.lower() in FORBIDDEN_REQUEST_HEADERS:
        return (
            f"the {name!r} header is set by the engine from the URL and the body; a step may "
            f"not set {', '.join(sorted(FORBIDDEN_REQUEST_HEADERS))}"
        )
    if value is not None and any(char in value for char in "\r\n\0"):
        return f"the value of the {name!r} header holds a line break or NUL character"
    return None


def _header_problems(definition: WorkflowDefinition) -> list[Problem]:
    problems = []
    for index, step in enumerate(definition.steps):
        if not isinstance(step, HTTPStep):
            continue
        for name, value in step.headers.items():
            problem = header_problem(name, value)
            if problem is not None:
                problems.append(
                    Problem(
                        f"$.steps[{index}].headers.{name}",
                        f"step '{step.id}': {problem}",
                        code="invalid_header",
                    )
                )
    return problems


def _schema_problems(definition: WorkflowDefinition) -> list[Problem]:
    problems = []
    if definition.inputs is not None:
        problems += _check_schema(definition.inputs, "$.inputs")
    for index, step in enumerate(definition.steps):
        if isinstance(step, AIStep) and step.response_format is not None:
            schema = getattr(step.response_format, "schema_", None)
            if schema is not None:
                problems += _check_schema(schema, f"$.steps[{index}].response_format.schema")
    return problems


def _check_schema(schema: dict[str, Any], where: str) -> list[Problem]:
    # workflows/input_schema.py: the metaschema, local-only $ref, RE2-compatible patterns.
    return schema_problems(schema, where)


def _condition_problems(definition: WorkflowDefinition) -> list[Problem]:
    problems = []
    for index, step in enumerate(definition.steps):
        if isinstance(step, SetStep):
            for name, expression in step.compute.items():
                try:
                    compile_condition(expression)
                except ConditionError as err:
                    problems.append(
                        Problem(
                            f"$.steps[{index}].compute.{name}",
                            f"step '{step.id}': {err}",
                            code="invalid_condition",
                        )
                    )
        if not isinstance(step, ConditionStep):
            continue
        for b_index, branch in enumerate(step.branches):
            try:
                compile_condition(branch.when)
            except ConditionError as err:
                problems.append(
                    Problem(
                        f"$.steps[{index}].branches[{b_index}].when",
                        f"step '{step.id}': {err}",
                        code="invalid_condition",
                    )
                )
    return problems


def templated_fields(step: Step) -> dict[str, Any]:
    """The fields of a step that are rendered with `{variable}` substitution."""
    if isinstance(step, AIStep):
        fields: dict[str, Any] = {"model": step.model}
        if step.messages is not None:
            fields["messages"] = [m.model_dump() for m in step.messages]
        if step.prompt is not None:
            fields["prompt"] = step.prompt
        return fields
    if isinstance(step, HTTPStep):
        return {
            "url": step.url,
            "headers": step.headers,
            "query": step.query,
            "json": step.json_body,
            "body": step.body,
        }
    if isinstance(step, SetStep):
        return {"values": step.values}
    if isinstance(step, DelayStep):
        return {"seconds": step.seconds, "until": step.until}
    if isinstance(step, FailStep):
        return {"message": step.message}
    return {}


def defined_names(step: Step) -> set[str]:
    """Variables a step binds when it succeeds."""
    if isinstance(step, SetStep):
        return set(step.values) | set(step.compute)
    if isinstance(step, AIStep | HTTPStep | WaitForSignalStep) and step.output:
        return {step.output}
    return set()


def declared_inputs(definition: WorkflowDefinition) -> set[str]:
    inputs = definition.inputs or {}
    properties = inputs.get("properties")
    return set(properties) if isinstance(properties, dict) else set()


def _reference_problems(definition: WorkflowDefinition, graph: list[list[int]]) -> list[Problem]:
    problems: list[Problem] = []
    inputs = declared_inputs(definition)
    for index, step in enumerate(definition.steps):
        for name in sorted(defined_names(step) & RESERVED_VARIABLES):
            problems.append(
                Problem(
                    f"$.steps[{index}]",
                    f"step '{step.id}' sets '{name}', a reserved name; choose another",
                    code="reserved_variable",
                )
            )
    available = _available_names(definition, graph)
    for index, step in enumerate(definition.steps):
        known = inputs | RESERVED_VARIABLES | available[index]
        where = f"$.steps[{index}]"
        uses: list[tuple[str, str, bool]] = []  # (path, root name, secret allowed)
        activity = isinstance(step, AIStep | HTTPStep)
        try:
            for field, value in templated_fields(step).items():
                for path, ref in references_in(value, f"{where}.{field}"):
                    uses.append((path, ref.path, activity))
        except TemplateError as err:
            problems.append(Problem(where, f"step '{step.id}': {err}"))
            continue
        if isinstance(step, ConditionStep):
            for b_index, branch in enumerate(step.branches):
                for name in sorted(condition_variables(branch.when)):
                    uses.append((f"{where}.branches[{b_index}].when", name, False))
        if isinstance(step, SetStep):
            for name, expression in step.compute.items():
                for used in sorted(condition_variables(expression)):
                    uses.append((f"{where}.compute.{name}", used, False))
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
                            f"step '{step.id}': write a secret as {{secrets.NAME}}, "
                            f"not {{{ref_path}}}",
                            code="invalid_reference",
                        )
                    )
                continue
            if root not in known:
                problems.append(
                    Problem(
                        path,
                        f"step '{step.id}' references '{{{ref_path}}}' but no input declares "
                        f"'{root}' and no earlier step sets it as output; declare it under "
                        "inputs.properties, fix the name, or write {{ }} for literal braces",
                        code="unknown_reference",
                    )
                )
    return problems


def _available_names(definition: WorkflowDefinition, graph: list[list[int]]) -> list[set[str]]:
    """For each step, the names some path from the first step may have bound before it."""
    count = len(definition.steps)
    defines = [defined_names(step) for step in definition.steps]
    available: list[set[str]] = [set() for _ in range(count)]
    # A step is (re)visited the first time it is reached and whenever more names reach it,
    # so steps after one that binds nothing (a delay, an http step without output) count too.
    visited = {0}
    work = [0]
    while work:
        node = work.pop()
        outgoing = available[node] | defines[node]
        for target in graph[node]:
            if target < 0:
                continue
            if target not in visited or not outgoing <= available[target]:
                visited.add(target)
                available[target] |= outgoing
                work.append(target)
    return available
