"""Property tests (hypothesis) for substitution and definition validation.

No crash, no 500, no RecursionError on deep or huge input:

- ``VariableSubstitutor.render`` returns or raises ``TemplateError``, is deterministic and
  single-pass, honours ``{{ }}``, leaves brace-free text alone, and resolves exactly the
  references ``references_in`` reports;
- ``check_definition`` never raises on any JSON document (random, step-shaped, 10,000 levels
  deep, 5,000 steps, unicode and control characters) and locates every problem under ``$``;
- the API answers the same documents on ``POST /api/workflows/validate`` and
  ``PUT /api/workflows/{id}`` without a 5xx.

Every property runs derandomized (a fixed seed per test), so CI sees the same examples.
"""

from __future__ import annotations

import json
import random
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import ADMIN_KEY, serve_api
from workflows.errors import InvalidReferenceError, Problem, TemplateError
from workflows.kinds import STEP_TYPES
from workflows.templating import (
    DEFERRED_ROOTS,
    MAX_TEMPLATE_DEPTH,
    VariableSubstitutor,
    references_in,
)
from workflows.validation import check_definition

PROPERTY = settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DEEP = 10_000
HUGE = 5_000

# -- strategies ---------------------------------------------------------------------------

IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
ODD_KEYS = st.sampled_from(["0", "1", "content-type", "__dict__", "a.b", "", "x y", "é", "{x}"])
KEY = st.one_of(IDENT, ODD_KEYS, st.text(max_size=6))
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
JSON = st.recursive(
    SCALAR,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEY, children, max_size=4),
    max_leaves=20,
)
CONTEXT = st.dictionaries(KEY, JSON, max_size=6)
BRACES = st.sampled_from(["{", "}", "{{", "}}", ".", "0", "_", "-", "__", " ", "{x}", "{0}"])
TEXT = st.text(max_size=8)  # any unicode, braces included


def deeply_nested(depth: int, kind: str = "list") -> Any:
    """A value ``depth`` levels deep, built without recursion."""
    root: Any = [] if kind == "list" else {}
    current = root
    for _ in range(depth):
        child: Any = [] if kind == "list" else {}
        if kind == "list":
            current.append(child)
        else:
            current["a"] = child
        current = child
    return root


def deep_json_text(depth: int) -> str:
    """The JSON text of a ``depth``-deep document (json.dumps itself would recurse)."""
    return '{"id": "deep", "steps": ' + "[" * depth + "]" * depth + "}"


def paths_of(context: Mapping[str, Any], limit: int = 3) -> list[str]:
    """Dotted paths into a context, as references would write them (a few levels deep)."""
    found: list[str] = []
    stack: list[tuple[str, Any, int]] = [(str(k), v, 1) for k, v in context.items()]
    while stack:
        path, value, depth = stack.pop()
        found.append(path)
        if depth >= limit:
            continue
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}", v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", v, depth + 1) for i, v in enumerate(value))
    return found


@st.composite
def context_and_template(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A context and a template mixing text, stray braces and references into the context."""
    context = draw(CONTEXT)
    references = [
        "{" + p + "}" for p in [*paths_of(context), "missing", "secrets.K", "execution.id"]
    ]
    piece = st.one_of(TEXT, BRACES, st.sampled_from(references))
    return context, "".join(draw(st.lists(piece, max_size=8)))


class RecordingContext(Mapping[str, Any]):
    """A context that records which root names the renderer looks up, in order."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)
        self.looked_up: list[str] = []

    def __contains__(self, key: object) -> bool:
        self.looked_up.append(str(key))
        return key in self._values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def render_outcome(context: Mapping[str, Any], template: Any) -> tuple[str, Any]:
    """("ok", value) or ("error", message); anything but a TemplateError propagates."""
    try:
        return "ok", VariableSubstitutor(context).render(template)
    except TemplateError as err:
        return "error", f"{type(err).__name__}: {err}"


# -- substitution -------------------------------------------------------------------------


@PROPERTY
@given(context_and_template())
def test_render_returns_or_raises_template_error_and_is_deterministic(
    case: tuple[dict[str, Any], str],
) -> None:
    context, template = case
    first = render_outcome(context, template)
    again = render_outcome(json.loads(json.dumps(context)), template)
    assert first == again


@PROPERTY
@given(CONTEXT, st.recursive(st.one_of(SCALAR, BRACES, TEXT), lambda c: st.lists(c, max_size=3)))
def test_render_of_any_json_value_returns_or_raises_template_error(
    context: dict[str, Any], value: Any
) -> None:
    assert render_outcome(context, value) == render_outcome(context, value)


@PROPERTY
@given(
    st.lists(st.one_of(TEXT, BRACES, st.just("{w}"), st.just("{{w}}")), max_size=6).map("".join),
    st.text(max_size=6).filter(lambda t: "{" not in t and "}" not in t),
    st.text(max_size=6).filter(lambda t: "{" not in t and "}" not in t),
)
def test_substituted_values_are_never_scanned_again(value: str, prefix: str, suffix: str) -> None:
    context = {"v": value, "w": "WWW", "secrets": {"K": "leak"}}
    substitutor = VariableSubstitutor(context)
    assert substitutor.render("{v}") == value
    assert substitutor.render(prefix + "{v}" + suffix) == prefix + value + suffix
    assert substitutor.render(["{v}", {"k": "{v}!"}]) == [value, {"k": value + "!"}]


@PROPERTY
@given(st.text(max_size=20).filter(lambda t: "{" not in t and "}" not in t), CONTEXT)
def test_double_braces_render_as_single_braces(inner: str, context: dict[str, Any]) -> None:
    assert VariableSubstitutor(context).render("{{" + inner + "}}") == "{" + inner + "}"
    assert VariableSubstitutor(context).render("a{{" + inner + "}}b") == "a{" + inner + "}b"


@PROPERTY
@given(st.text().filter(lambda t: "{" not in t), CONTEXT)
def test_text_without_an_opening_brace_is_returned_unchanged(
    template: str, context: dict[str, Any]
) -> None:
    assert VariableSubstitutor(context).render(template) == template
    assert VariableSubstitutor(context).render({"k": [template]}) == {"k": [template]}


@PROPERTY
@given(context_and_template())
def test_the_renderer_resolves_exactly_the_references_references_in_reports(
    case: tuple[dict[str, Any], str],
) -> None:
    context, template = case
    references = [ref for _, ref in references_in(template)]
    expected = [ref.root for ref in references if ref.root not in DEFERRED_ROOTS]
    recording = RecordingContext(context)
    try:
        VariableSubstitutor(recording).render(template)
    except InvalidReferenceError as err:
        # Resolution stops at the first reference that fails, in template order.
        looked_up = recording.looked_up
        assert looked_up == expected[: len(looked_up)] and looked_up
        failed = [ref for ref in references if ref.root not in DEFERRED_ROOTS][len(looked_up) - 1]
        assert str(err).startswith(f"invalid variable reference {{{failed.path}}}:")
    except TemplateError:
        # Only deferred (secret) references are refused outside activities.
        assert recording.looked_up == expected
        assert any(ref.root in DEFERRED_ROOTS for ref in references)
    else:
        assert recording.looked_up == expected
        assert not any(ref.root in DEFERRED_ROOTS for ref in references)


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_templates_raise_template_error_not_recursion_error(kind: str) -> None:
    deep = deeply_nested(DEEP, kind)
    with pytest.raises(TemplateError, match="nested deeper than"):
        VariableSubstitutor({}).render(deep)
    with pytest.raises(TemplateError, match="nested deeper than"):
        list(references_in(deep))
    # Just inside the limit is fine.
    shallow = deeply_nested(MAX_TEMPLATE_DEPTH, kind)
    assert VariableSubstitutor({}).render(shallow) == shallow


def test_a_deep_value_as_a_whole_reference_is_passed_through() -> None:
    deep = deeply_nested(DEEP)
    assert VariableSubstitutor({"x": deep}).render("{x}") is deep


def test_a_deep_value_inside_text_raises_template_error() -> None:
    with pytest.raises(TemplateError):
        VariableSubstitutor({"x": deeply_nested(DEEP)}).render("value: {x}")


# -- definition validation ----------------------------------------------------------------

FIELD_NAMES = [
    "id", "name", "description", "inputs", "timeout_seconds", "defaults", "steps", "triggers",
    "type", "next", "on_error", "output", "retry", "values", "branches", "when", "default",
    "model", "prompt", "messages", "role", "content", "response_format", "schema", "url",
    "method", "headers", "json", "body", "seconds", "until", "signal", "message", "cron",
    "interval_seconds", "max_attempts",
]  # fmt: skip
DOC_KEY = st.one_of(st.sampled_from(FIELD_NAMES), KEY)
ANY_SCALAR = st.one_of(
    SCALAR, st.floats(), st.sampled_from(STEP_TYPES), st.sampled_from(FIELD_NAMES)
)
JSON_DOCUMENT = st.recursive(
    ANY_SCALAR,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(DOC_KEY, children, max_size=6)
    ),
    max_leaves=40,
)

WEIRD_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(),  # any unicode code point but surrogates
        st.sampled_from(["\x00", "\x1b", "\n", "\u202e", "\ufeff", "\ud800", "\U0001f600"]),
    ),
    max_size=12,
)
STEP_IDS = ["a", "b", "c", "d", "end"]
STEP_ID = st.one_of(st.sampled_from(STEP_IDS), WEIRD_TEXT, st.integers())
TARGET = st.one_of(st.sampled_from([*STEP_IDS, "nowhere"]), WEIRD_TEXT, st.none())
TEMPLATE = st.one_of(
    st.sampled_from(
        [
            "{x}",
            "{a.b}",
            "hi {name}",
            "{{lit}}",
            "{secrets.K}",
            "{secrets.K.z}",
            "{execution.id}",
            "{",
            "}",
            "{__class__}",
            "{missing}",
            "{x.0.y}",
        ]
    ),
    WEIRD_TEXT,
)
CEL = st.one_of(
    st.sampled_from(["true", "x > 1", "(", "a.b == 'c'", "", "secrets.K == 1", "size(x) > 0"]),
    WEIRD_TEXT,
)
NAME = st.one_of(IDENT, st.sampled_from(["execution", "secrets", "1x", ""]), WEIRD_TEXT)
ON_ERROR = st.one_of(
    st.sampled_from(["fail", "continue", "boom"]), st.fixed_dictionaries({"next": TARGET}), JSON
)
RETRY = st.fixed_dictionaries(
    {},
    optional={
        "max_attempts": st.integers(-2, 200),
        "initial_interval_seconds": st.floats(),
        "backoff_coefficient": st.floats(),
        "non_retryable_errors": st.lists(WEIRD_TEXT, max_size=2),
    },
)
NUMBER = st.one_of(st.integers(), st.floats(), st.text(max_size=4))
FLOW = {"next": TARGET, "on_error": ON_ERROR, "name": WEIRD_TEXT, "description": WEIRD_TEXT}
ACTIVITY = {**FLOW, "output": NAME, "retry": RETRY, "timeout_seconds": NUMBER}
SCHEMA = st.one_of(
    st.just({"type": "object", "properties": {"p": {"type": "string"}}}),
    st.just({"type": 5}),
    st.just({"$ref": "#/nowhere"}),
    st.dictionaries(DOC_KEY, JSON, max_size=3),
)


def step_of(kind: str, required: dict[str, Any], optional: dict[str, Any]) -> Any:
    return st.fixed_dictionaries(
        {"id": STEP_ID, "type": st.just(kind), **required}, optional=optional
    )


STEP = st.one_of(
    step_of("set", {"values": st.dictionaries(NAME, st.one_of(TEMPLATE, JSON), max_size=3)}, FLOW),
    step_of(
        "condition",
        {"branches": st.lists(st.fixed_dictionaries({"when": CEL, "next": TARGET}), max_size=3)},
        {"default": TARGET, "name": WEIRD_TEXT},
    ),
    step_of(
        "ai",
        {"model": TEMPLATE},
        {
            **ACTIVITY,
            "prompt": TEMPLATE,
            "messages": st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["user", "system", "bot"]), "content": TEMPLATE}
                ),
                max_size=3,
            ),
            "temperature": NUMBER,
            "response_format": st.one_of(
                st.just({"type": "json_object"}),
                st.fixed_dictionaries({"type": st.just("json_schema"), "schema": SCHEMA}),
                JSON,
            ),
        },
    ),
    step_of(
        "http",
        {"url": TEMPLATE},
        {
            **ACTIVITY,
            "method": st.sampled_from(["GET", "post", "BREW", ""]),
            "headers": st.dictionaries(WEIRD_TEXT, TEMPLATE, max_size=2),
            "json": JSON,
            "body": TEMPLATE,
            "expect_status": st.one_of(st.integers(), st.lists(st.integers(), max_size=2)),
        },
    ),
    step_of("delay", {}, {**FLOW, "seconds": NUMBER, "until": TEMPLATE}),
    step_of("wait_for_signal", {"signal": WEIRD_TEXT}, {**FLOW, "timeout_seconds": NUMBER}),
    step_of("fail", {"message": TEMPLATE}, {"name": WEIRD_TEXT}),
    st.fixed_dictionaries({"id": STEP_ID}, optional={"type": st.one_of(WEIRD_TEXT, JSON)}),
    JSON,
)
TRIGGER = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("schedule")},
        optional={
            "id": WEIRD_TEXT,
            "cron": st.sampled_from(["*/5 * * * *", "@daily", "nonsense", ""]),
            "interval_seconds": NUMBER,
            "input_vars": st.dictionaries(NAME, JSON, max_size=2),
            "paused": st.just(True),
        },
    ),
    st.fixed_dictionaries({"type": st.just("webhook")}, optional={"secret": WEIRD_TEXT}),
    JSON,
)
STEP_DOCUMENT = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["wf", "w-1"]), st.integers(), WEIRD_TEXT)},
    optional={
        "steps": st.lists(STEP, max_size=6),
        "name": WEIRD_TEXT,
        "description": WEIRD_TEXT,
        "inputs": st.one_of(
            st.just(
                {
                    "type": "object",
                    "properties": {"x": {}, "name": {"type": "string"}, "a": {"type": "object"}},
                }
            ),
            SCHEMA,
            JSON,
        ),
        "timeout_seconds": NUMBER,
        "defaults": st.one_of(
            st.fixed_dictionaries({}, optional={"timeout_seconds": NUMBER, "retry": RETRY}), JSON
        ),
        "triggers": st.lists(TRIGGER, max_size=2),
        "extra": JSON,
    },
)

# Well-formed steps over a few ids: many of these documents are valid, so the graph checks
# (reachability, loops, data flow) run on them, not only the shape checks.
GOOD_ID = st.sampled_from(["a", "b", "c", "d"])
GOOD_TARGET = st.sampled_from(["a", "b", "c", "d", "end"])
GOOD_FLOW = {"next": GOOD_TARGET, "on_error": st.sampled_from(["fail", "continue"])}
GOOD_TEXT = st.sampled_from(["plain", "x is {x}", "{x}", "{{literal}}", "{out.text}", "{v}"])
GOOD_STEP = st.one_of(
    st.fixed_dictionaries(
        {
            "id": GOOD_ID,
            "type": st.just("set"),
            "values": st.dictionaries(
                st.sampled_from(["v", "w", "out"]), st.one_of(GOOD_TEXT, JSON), min_size=1
            ),
        },
        optional={"next": GOOD_TARGET},
    ),
    st.fixed_dictionaries(
        {
            "id": GOOD_ID,
            "type": st.just("condition"),
            "branches": st.lists(
                st.fixed_dictionaries(
                    {"when": st.sampled_from(["x > 1", "true", "v == 'a'"]), "next": GOOD_TARGET}
                ),
                min_size=1,
                max_size=2,
            ),
        },
        optional={"default": GOOD_TARGET},
    ),
    st.fixed_dictionaries(
        {"id": GOOD_ID, "type": st.just("ai"), "model": st.just("m"), "prompt": GOOD_TEXT},
        optional={
            **GOOD_FLOW,
            "output": st.just("out"),
            "retry": st.fixed_dictionaries({"max_attempts": st.integers(1, 5)}),
            "response_format": st.just({"type": "json_object"}),
        },
    ),
    st.fixed_dictionaries(
        {"id": GOOD_ID, "type": st.just("http"), "url": st.just("http://example.com/{x}")},
        optional={**GOOD_FLOW, "output": st.just("out"), "method": st.just("POST")},
    ),
    st.fixed_dictionaries(
        {"id": GOOD_ID, "type": st.just("delay"), "seconds": st.integers(0, 10)},
        optional=GOOD_FLOW,
    ),
    st.fixed_dictionaries(
        {"id": GOOD_ID, "type": st.just("wait_for_signal"), "signal": st.just("go")},
        optional={**GOOD_FLOW, "output": st.just("v")},
    ),
    st.fixed_dictionaries({"id": GOOD_ID, "type": st.just("fail"), "message": GOOD_TEXT}),
)
GOOD_DOCUMENT = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["wf", "w-1", 7]),
        "inputs": st.just({"type": "object", "properties": {"x": {"type": "integer"}}}),
        "steps": st.lists(GOOD_STEP, min_size=1, max_size=5, unique_by=lambda s: s["id"]),
    },
    optional={"name": WEIRD_TEXT, "triggers": st.lists(TRIGGER, max_size=1)},
)
ANY_DOCUMENT = st.one_of(JSON_DOCUMENT, STEP_DOCUMENT, GOOD_DOCUMENT)


def assert_well_formed(document: Any) -> tuple[Any, list[Problem]]:
    result = check_definition(document)
    assert isinstance(result, tuple) and len(result) == 2
    definition, problems = result
    assert isinstance(problems, list)
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.path.startswith("$"), problem
        assert isinstance(problem.message, str) and problem.message
    if not problems:
        assert definition is not None
    if definition is None:
        assert problems
    return definition, problems


@PROPERTY
@given(JSON_DOCUMENT)
def test_check_definition_never_raises_on_any_json(document: Any) -> None:
    assert_well_formed(document)


@settings(PROPERTY, max_examples=300)
@given(st.one_of(STEP_DOCUMENT, GOOD_DOCUMENT))
def test_check_definition_never_raises_on_random_steps(document: dict[str, Any]) -> None:
    assert_well_formed(document)


def test_the_step_strategy_reaches_valid_definitions() -> None:
    """Guards the generator: some generated documents must pass, or the graph checks go
    untested."""
    documents = collect(GOOD_DOCUMENT, 200)
    valid = [d for d in documents if not check_definition(d)[1]]
    assert len(valid) >= len(documents) // 10


def wrapped(value: Any) -> list[Any]:
    """Documents that carry ``value`` at the top, in steps, in a step, in inputs."""
    return [
        value,
        {"id": "deep", "steps": value},
        {"id": "deep", "steps": [value]},
        {"id": "deep", "steps": [{"id": "a", "type": "set", "values": {"v": value}}]},
        {"id": "deep", "inputs": value, "steps": [{"id": "a", "type": "set", "values": {"v": 1}}]},
        {"id": "deep", "steps": [{"id": "a", "type": "http", "url": "http://x", "json": value}]},
    ]


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_check_definition_on_10000_levels(kind: str) -> None:
    for document in wrapped(deeply_nested(DEEP, kind)):
        definition, problems = assert_well_formed(document)
        assert definition is None
        if isinstance(document, dict):
            assert any("nested deeper than" in p.message for p in problems)


def chain(count: int) -> list[dict[str, Any]]:
    """``count`` set steps in order, each using the variable the one before it set."""
    return [
        {"id": f"s{i}", "type": "set", "values": {f"v{i}": f"{{v{i - 1}}}" if i else "start"}}
        for i in range(count)
    ]


def test_check_definition_on_5000_steps() -> None:
    definition, problems = assert_well_formed({"id": "huge", "steps": chain(HUGE)})
    assert problems == [] and definition is not None and len(definition.steps) == HUGE

    looping = [
        {"id": f"s{i}", "type": "set", "values": {"v": i}, "next": f"s{(i + 1) % HUGE}"}
        for i in range(HUGE)
    ]
    _, problems = assert_well_formed({"id": "huge", "steps": looping})
    assert [p.code for p in problems] == ["unbounded_loop"]

    rng = random.Random(5000)
    branching = [
        {
            "id": f"s{i}",
            "type": "condition",
            "branches": [{"when": "x > 1", "next": f"s{rng.randrange(HUGE)}"}],
            "default": rng.choice([f"s{rng.randrange(HUGE)}", "end"]),
        }
        for i in range(HUGE)
    ]
    inputs = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert_well_formed({"id": "huge", "inputs": inputs, "steps": branching})

    broken = chain(HUGE)
    broken[10]["id"] = "s0"  # a duplicate id
    broken[20]["values"] = {"v20": "{nothing}"}
    broken[-1]["next"] = "nowhere"
    _, problems = assert_well_formed({"id": "huge", "steps": broken})
    # Every problem in one answer: the unknown name too, although ids and jumps are wrong.
    assert {p.code for p in problems} == {"duplicate_step_id", "unknown_next", "unknown_reference"}


@PROPERTY
@given(WEIRD_TEXT, WEIRD_TEXT, WEIRD_TEXT)
def test_unicode_and_control_characters_in_names(name: str, step_id: str, value: str) -> None:
    document = {
        "id": "names",
        "name": name,
        "description": value,
        "steps": [
            {"id": step_id, "type": "set", "name": name, "values": {"v": value}},
            {"id": "b", "type": "fail", "message": value or "x", "name": name},
        ],
    }
    assert_well_formed(document)


# -- the API ------------------------------------------------------------------------------


def collect(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` examples of a strategy, the same ones on every run."""
    found: list[Any] = []

    @settings(
        PROPERTY,
        max_examples=count,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def gather(value: Any) -> None:
        found.append(value)

    gather()
    return found


def api_documents() -> list[tuple[str, bytes]]:
    """(label, JSON body) pairs: generated documents, then deep and huge ones."""
    bodies: list[tuple[str, bytes]] = []
    for index, document in enumerate(collect(ANY_DOCUMENT, 150)):
        # NaN and Infinity are sent as Python writes them; lone surrogates as \\ud800 escapes.
        bodies.append((f"generated[{index}]", json.dumps(document).encode()))
    for depth in (100, 900):  # 10,000: see test_the_api_answers_a_10000_level_body_...
        bodies.append((f"{depth} levels", deep_json_text(depth).encode()))
    bodies.append(("5000 steps", json.dumps({"id": "huge", "steps": chain(HUGE)}).encode()))
    bodies.append(("1000 steps", json.dumps({"id": "huge", "steps": chain(1000)}).encode()))
    return bodies


@pytest.fixture
async def api(client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real API (like the `http` fixture), with a rate limit these bursts do not hit."""
    roomy = settings.model_copy(update={"api_rate_limit_burst": 100_000})
    async with (
        serve_api(roomy, client) as url,
        httpx.AsyncClient(
            base_url=url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as session,
    ):
        yield session


def for_saving(body: bytes, workflow_id: str, matching_id: bool) -> bytes:
    """The body to PUT: with the path's id (or the generated one), and no schedule triggers
    (saving those would create real Temporal schedules)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return body
    if not isinstance(document, dict):
        return body
    document.pop("triggers", None)
    if matching_id:
        document["id"] = workflow_id
    return json.dumps(document).encode()


async def test_the_api_never_answers_5xx_to_generated_documents(api: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/json"}
    failures: list[str] = []
    saved = 0
    for index, (label, body) in enumerate(api_documents()):
        answer = await api.post("/api/workflows/validate", content=body, headers=headers)
        if answer.status_code != 200:
            failures.append(f"validate {label}: {answer.status_code} {answer.text[:200]}")
        else:
            for error in answer.json()["errors"]:
                if not error["path"].startswith("$"):
                    failures.append(f"validate {label}: path {error['path']!r}")
        workflow_id = f"prop-{index}"
        answer = await api.put(
            f"/api/workflows/{workflow_id}",
            content=for_saving(body, workflow_id, matching_id=index % 4 != 0),
            headers=headers,
        )
        if answer.status_code >= 500:
            failures.append(f"PUT {label}: {answer.status_code} {answer.text[:200]}")
        saved += answer.status_code in (200, 201)
    assert failures == [], "\n".join(failures)
    assert saved >= 1  # some documents were valid and stored, not only refused


async def test_the_api_never_answers_5xx_to_odd_workflow_ids(api: httpx.AsyncClient) -> None:
    body = json.dumps({"steps": [{"id": "a", "type": "set", "values": {"v": 1}}]}).encode()
    failures = []
    for workflow_id in collect(WEIRD_TEXT.filter(lambda t: t not in ("", ".", "..")), 60):
        # Lone surrogates go out as the (invalid UTF-8) bytes they would be.
        raw = workflow_id.encode("utf-8", "surrogatepass")
        path = "/api/workflows/" + urllib.parse.quote(raw, safe="")
        answer = await api.put(path, content=body, headers={"Content-Type": "application/json"})
        if answer.status_code >= 500:
            failures.append(f"PUT {workflow_id!r}: {answer.status_code} {answer.text[:200]}")
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/workflows/validate"),
        ("PUT", "/api/workflows/deep"),
        ("POST", "/api/workflows/run"),
    ],
)
async def test_the_api_answers_a_10000_level_body_without_a_5xx(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    body = deep_json_text(DEEP).encode()  # 20 kB: well under API_MAX_BODY_BYTES
    answer = await api.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code < 500, answer.text
