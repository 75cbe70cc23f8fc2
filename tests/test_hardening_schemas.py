"""User-written JSON Schemas (``inputs``, an ai step's ``response_format``) reach neither the
network nor the disk, and no pattern or schema shape can hold the API or the worker
(workflows/input_schema.py).

Connections go only to 127.0.0.1: a tripwire listener counts what would have been fetched,
and a canary file shows nothing was read from the disk.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.runtime.settings import Settings
from tests.conftest import outcome, read_log, save_raw_definition, start_definition
from tests.fakes import FakeOpenRouter, Reply, completion
from workflows.definition import WorkflowDefinition
from workflows.errors import FailureType
from workflows.formats import ASSERTED_FORMATS
from workflows.input_schema import (
    INVALID_SCHEMA,
    MAX_PATTERN_LENGTH,
    TOO_COSTLY,
    VIOLATION,
    declarations,
    schema_problems,
    undeclared_problems,
    value_problems,
    value_problems_async,
    with_defaults,
)
from workflows.messages import SA_DEFINITION_ID, WORKFLOW_TYPE
from workflows.shared import ExecutionInput
from workflows.validation import check_definition

FILE_CANARY = "canary-file-content-91c2"
CATASTROPHIC = "^(a+)+$"  # exponential on "aaa...b" with a backtracking engine
EVIL_TEXT = "a" * 50_000 + "!"


class Tripwire:
    """A loopback listener that counts connections: what a fetch of a $ref would open."""

    def __init__(self) -> None:
        self.accepted = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/schema.json"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    wire = Tripwire()
    yield wire
    wire.close()


@pytest.fixture
def canary_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"type": "string", "description": FILE_CANARY}))
    return path


def with_ref(ref: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"x": {"$ref": ref}}}


def remote_refs(wire: Tripwire, canary: Path) -> list[str]:
    return [
        wire.url,
        f"http://localhost:{wire.port}/schema.json#/$defs/a",
        canary.as_uri(),
        "other.json#/x",
        "https://json-schema.org/draft/2020-12/schema",  # even the metaschema's own URL
    ]


# -- save time --------------------------------------------------------------------------------


def test_remote_and_file_refs_are_refused_at_save_with_the_path(
    tripwire: Tripwire, canary_file: Path
) -> None:
    for ref in remote_refs(tripwire, canary_file):
        (problem,) = schema_problems(with_ref(ref), "$.inputs")
        assert problem.path == "$.inputs.properties.x.$ref"
        assert "only local references" in problem.message, problem.message
        assert FILE_CANARY not in problem.message
    dynamic = {"properties": {"x": {"$dynamicRef": tripwire.url}}}
    (problem,) = schema_problems(dynamic, "$.inputs")
    assert problem.path == "$.inputs.properties.x.$dynamicRef"
    assert tripwire.accepted == 0


def test_local_refs_are_checked_to_land_on_a_schema_of_the_document() -> None:
    good = {
        "$defs": {"name": {"type": "string"}, "node": {"$anchor": "node", "type": "object"}},
        "properties": {
            "a": {"$ref": "#/$defs/name"},
            "b": {"$ref": "#node"},
            "c": {"items": {"$ref": "#"}},
            "d": {"$id": "https://example.test/embedded", "$defs": {"e": {}}, "$ref": "#/$defs/e"},
        },
    }
    assert schema_problems(good, "$.inputs") == []
    bad = {
        "properties": {
            "a": {"default": {"type": "string"}},
            "b": {"$ref": "#/$defs/missing"},
            "c": {"$ref": "#/properties/a/default"},
        }
    }
    found = {p.path: p.message for p in schema_problems(bad, "$.inputs")}
    assert "points to nothing" in found["$.inputs.properties.b.$ref"]
    assert "outside the schema's keywords" in found["$.inputs.properties.c.$ref"]


def test_dialect_is_2020_12_and_declared_only_at_the_top() -> None:
    top = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
    assert schema_problems(top, "$.inputs") == []
    nested = {"properties": {"a": {"$schema": "http://json-schema.org/draft-04/schema#"}}}
    (problem,) = schema_problems(nested, "$.inputs")
    assert problem.path == "$.inputs.properties.a.$schema"
    (problem,) = schema_problems({"$schema": "http://json-schema.org/draft-07/schema#"}, "$.in")
    assert problem.path == "$.in.$schema"


def test_patterns_must_be_ones_re2_runs_and_not_too_long() -> None:
    schema = {
        "properties": {
            "look": {"pattern": "^(?=a)a$"},
            "back": {"pattern": "(a)\\1"},
            "long": {"pattern": "a" * (MAX_PATTERN_LENGTH + 1)},
            "fine": {"pattern": CATASTROPHIC},  # safe on RE2: linear whatever the input
            "unicode": {"pattern": "^\\p{L}+$"},
        },
        "patternProperties": {"(?<=x)y": {}},
    }
    found = {p.path: p.message for p in schema_problems(schema, "$.inputs")}
    assert set(found) == {
        "$.inputs.properties.look.pattern",
        "$.inputs.properties.back.pattern",
        "$.inputs.properties.long.pattern",
        "$.inputs.patternProperties.(?<=x)y",
    }, found
    assert "RE2" in found["$.inputs.properties.look.pattern"]
    assert f"limit is {MAX_PATTERN_LENGTH}" in found["$.inputs.properties.long.pattern"]


# -- run time ---------------------------------------------------------------------------------


def test_catastrophic_patterns_are_checked_in_linear_time() -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"pattern": CATASTROPHIC}},
        "patternProperties": {CATASTROPHIC: {"type": "string"}},
        "propertyNames": {"pattern": "^([a-z]|[a-z])*$"},
        "additionalProperties": False,
        "unevaluatedProperties": False,
    }
    started = time.monotonic()
    found = value_problems(schema, {"code": EVIL_TEXT, EVIL_TEXT: 1}, "$.input_vars")
    assert time.monotonic() - started < 1.0
    assert all(p.code == VIOLATION for p in found), found
    paths = {p.path for p in found}
    assert "$.input_vars.code" in paths  # does not match
    assert value_problems(schema, {"code": "aaaa"}) == []


def test_ecma_like_pattern_semantics() -> None:
    # JSON Schema patterns are ECMA-262: `$` is the end of the text, \\d is ASCII.
    assert value_problems({"pattern": "^a$"}, "a\n") != []
    assert value_problems({"pattern": "^\\d+$"}, "\u0663") != []  # an Arabic-Indic digit
    assert value_problems({"pattern": "^\\p{L}+$"}, "héllo") == []
    assert value_problems({"pattern": "^a"}, "\ud800a") != []  # a lone surrogate: no crash


def test_an_exponential_ref_graph_stops_at_the_time_budget() -> None:
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(40)
    }
    defs["d40"] = {"type": "string"}
    schema = {"$defs": defs, "$ref": "#/$defs/d0"}
    assert schema_problems(schema, "$.inputs") == []  # valid, just costly
    started = time.monotonic()
    (problem,) = value_problems(schema, "x", "$.input_vars", time_limit=0.3)
    assert time.monotonic() - started < 1.5
    assert problem.code == TOO_COSTLY and "longer than 0.3 s" in problem.message
    # Counted instead of timed (workflow code): the same verdict every time, however fast.
    verdicts = {tuple(value_problems(schema, "x", "$", max_checks=20_000)) for _ in range(3)}
    ((counted,),) = verdicts
    assert counted.code == TOO_COSTLY and "longer than 20,000 checks" in counted.message
    assert value_problems({"type": "string"}, "x", "$", max_checks=5) == []


def test_a_ref_loop_that_never_descends_is_refused_at_save_and_at_run_time() -> None:
    schema = {
        "$defs": {
            "a": {"allOf": [{"$ref": "#/$defs/b"}]},
            "b": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/a"}]},
        },
        "properties": {"x": {"$ref": "#/$defs/a"}},
    }
    (problem,) = schema_problems(schema, "$.inputs")
    assert problem.path == "$.inputs.$defs.b.anyOf[1].$ref"
    assert "recurse forever" in problem.message
    (problem,) = value_problems(schema, {"x": 1})  # as saved by an older version
    assert problem.code == INVALID_SCHEMA and "recurse forever" in problem.message
    # Recursion that descends into the value (a tree) is fine...
    tree = {
        "$defs": {"node": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        "$ref": "#/$defs/node",
    }
    assert schema_problems(tree, "$.inputs") == []
    assert value_problems(tree, [[[]], []]) == []
    # ...and a value nested past what the stack allows is reported, not raised.
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    (problem,) = value_problems(tree, deep)
    assert problem.code == TOO_COSTLY


def test_unique_items_is_linear_and_keeps_json_equality() -> None:
    big = [{"n": i, "tags": [i, str(i)]} for i in range(30_000)]
    started = time.monotonic()
    assert value_problems({"uniqueItems": True}, big) == []
    # Not a speed test: jsonschema's pairwise check takes minutes here, a linear one well
    # under a second; the bound tells them apart on a machine busy with other work.
    assert time.monotonic() - started < 20.0
    assert value_problems({"uniqueItems": True}, [1, 1.0]) != []
    assert value_problems({"uniqueItems": True}, [1, True]) == []
    assert value_problems({"uniqueItems": True}, [{"a": [0]}, {"a": [0.0]}]) != []


def test_documents_saved_before_the_rules_are_refused_without_fetching(
    tripwire: Tripwire, canary_file: Path
) -> None:
    for ref in remote_refs(tripwire, canary_file):
        (problem,) = value_problems(with_ref(ref), {"x": "v"}, "$.input_vars")
        assert problem.code == INVALID_SCHEMA
        assert "only local references" in problem.message
        assert FILE_CANARY not in problem.message
    assert tripwire.accepted == 0


def test_a_declared_older_dialect_does_not_escape_re2() -> None:
    # jsonschema would switch a subschema declaring draft-04 to its stock validator (re).
    schema = {
        "properties": {
            "a": {"$schema": "http://json-schema.org/draft-04/schema#", "pattern": CATASTROPHIC}
        }
    }
    started = time.monotonic()
    (problem,) = value_problems(schema, {"a": EVIL_TEXT})
    assert time.monotonic() - started < 1.0
    assert problem.code == VIOLATION


async def test_async_validation_leaves_the_event_loop_free() -> None:
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(40)
    }
    defs["d40"] = {"type": "integer"}
    schema = {"$defs": defs, "$ref": "#/$defs/d0"}
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    running = asyncio.create_task(ticker())
    try:
        (problem,) = await value_problems_async(schema, "x", time_limit=0.5)
    finally:
        running.cancel()
    assert problem.code == TOO_COSTLY
    # Run on the loop, the check would allow no tick at all for its whole 0.5 s; in a thread
    # the loop keeps turning (fewer than 50 ticks, as the thread holds the GIL between switches).
    assert ticks >= 3


def test_defaults_fill_only_missing_top_level_names() -> None:
    schema = {"properties": {"a": {"default": 1}, "b": {"default": 2}, "c": {}}}
    assert with_defaults(schema, {"b": 5}) == {"a": 1, "b": 5}
    assert with_defaults(schema, "not an object") == "not an object"


def test_with_defaults_reads_allof_members_and_ref_targets_not_branches() -> None:
    schema = {
        "$defs": {"common": {"properties": {"b": {"default": "from-ref"}}}},
        "allOf": [{"$ref": "#/$defs/common"}, {"properties": {"a": {"default": "member"}}}],
        "properties": {"a": {"default": "root"}},
        "anyOf": [{"properties": {"c": {"default": "branch"}}}],
    }
    assert with_defaults(schema, {}) == {"a": "root", "b": "from-ref"}
    filled = with_defaults({"properties": {"tags": {"default": []}}}, {})
    filled["tags"].append("x")  # a filled default is the caller's own copy
    assert with_defaults({"properties": {"tags": {"default": []}}}, {}) == {"tags": []}


# -- what a schema declares, defaults, references, formats -----------------------------------


def test_undeclared_names_follow_composition_references_and_patterns() -> None:
    schema = {
        "allOf": [{"$ref": "#/$defs/common"}],
        "properties": {"mode": {"enum": ["fast", "full"]}},
        "if": {"properties": {"mode": {"const": "full"}}},
        "then": {"properties": {"depth": {"type": "integer"}}},
        "anyOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}],
        "dependentSchemas": {"a": {"properties": {"a_extra": {}}}},
        "not": {"properties": {"forbidden": {}}, "required": ["forbidden"]},
        "patternProperties": {"^x-": {}},
        "$defs": {"common": {"$id": "common.json", "properties": {"user": {}}}},
    }
    declared = declarations(schema)
    assert declared.closed
    assert declared.names == {"mode", "depth", "a", "b", "a_extra", "user"}
    value = {"mode": "fast", "user": "u", "depth": 1, "x-trace": 1, "colour": 1, "forbidden": 1}
    found = undeclared_problems(schema, value, "$.input_vars")
    assert [p.path for p in found] == ["$.input_vars.colour", "$.input_vars.forbidden"]
    assert "declared: a, a_extra, b, depth, mode, user; or a name matching '^x-'" in (
        found[0].message
    )
    # A reference by $id counts like one by pointer.
    by_id = {"$ref": "common.json", "$defs": {"c": {"$id": "common.json", "properties": {"u": {}}}}}
    assert declarations(by_id).names == {"u"} and undeclared_problems(by_id, {"u": 1}) == []


def test_the_undeclared_rule_is_off_when_the_schema_takes_any_name() -> None:
    for schema in (
        {"type": "object"},  # names nothing
        {"required": ["a"]},  # required alone declares nothing
        {"properties": {"a": {}}, "additionalProperties": {"type": "string"}},
        {"properties": {"a": {}}, "allOf": [{"unevaluatedProperties": True}]},
        {"properties": {"a": {}}, "additionalProperties": False},  # JSON Schema decides
        {"properties": {"a": {}}, "unevaluatedProperties": False},
    ):
        assert undeclared_problems(schema, {"a": 1, "other": 2}) == [], schema


def test_save_time_references_see_inputs_declared_anywhere_at_the_top() -> None:
    document = {
        "id": "composed",
        "inputs": {"allOf": [{"$ref": "#/$defs/who"}], "$defs": {"who": {"properties": {
            "user": {"type": "string"}}}}},
        "steps": [{"id": "a", "type": "set", "values": {"hi": "{user}"}}],
    }  # fmt: skip
    assert check_definition(document)[1] == []


def test_a_default_that_fails_its_own_schema_is_refused_at_save_with_its_path() -> None:
    schema = {
        "properties": {
            "currency": {"enum": ["EUR", "USD"], "default": "GBP"},
            "when": {"type": "string", "format": "date", "default": "2024-02-30"},
            "line": {"$ref": "#/$defs/line", "default": {"qty": 0}},
            "fine": {"type": "integer", "default": 3},
        },
        "$defs": {"line": {"properties": {"qty": {"minimum": 1}}}},
    }
    found = {p.path: p.message for p in schema_problems(schema, "$.inputs")}
    assert set(found) == {
        "$.inputs.properties.currency.default",
        "$.inputs.properties.when.default",
        "$.inputs.properties.line.default.qty",
    }, found
    assert found["$.inputs.properties.currency.default"] == (
        "the default does not satisfy its own schema: 'GBP' is not one of ['EUR', 'USD']"
    )


def test_references_by_id_anchor_and_relative_uri_resolve_within_the_document() -> None:
    schema = {
        "$id": "https://example.test/root.json",
        "properties": {
            "a": {"$ref": "item.json"},
            "b": {"$ref": "https://example.test/item.json#/properties/n"},
            "c": {"$ref": "#name"},
            "d": {"$ref": "urn:example:flag"},
            "e": {"$ref": "item.json#count"},
        },
        "$defs": {
            "item": {"$id": "item.json", "type": "object",
                     "properties": {"n": {"$anchor": "count", "type": "integer"}}},
            "name": {"$anchor": "name", "type": "string"},
            "flag": {"$id": "urn:example:flag", "type": "boolean"},
        },
    }  # fmt: skip
    assert schema_problems(schema, "$.inputs") == []
    good = {"a": {"n": 1}, "b": 2, "c": "x", "d": True, "e": 3}
    assert value_problems(schema, good) == []
    bad = {"a": {"n": "1"}, "b": "2", "c": 3, "d": 1, "e": 1.5}
    assert [p.path for p in value_problems(schema, bad)] == ["$.a.n", "$.b", "$.c", "$.d", "$.e"]


def test_a_reference_to_another_document_is_refused_with_a_clear_message() -> None:
    for ref in ("other.json", "https://example.test/other.json#/$defs/x", "urn:example:none"):
        (problem,) = schema_problems(with_ref(ref), "$.inputs")
        assert problem.path == "$.inputs.properties.x.$ref"
        assert "names another document" in problem.message
        assert "nothing is fetched" in problem.message
    (problem,) = schema_problems(with_ref("#nowhere"), "$.inputs")
    assert "points to nothing in this schema" in problem.message


def test_the_nine_formats_are_asserted_and_the_others_are_annotations() -> None:
    bad = {
        "date": "2024-02-30",
        "date-time": "2024-01-01 10:00:00",
        "time": "10:00:00",
        "email": "2962",
        "hostname": "-bad-",
        "ipv4": "010.0.0.1",
        "ipv6": "fe80::1%eth0",
        "uri": "/relative",
        "uuid": "not-a-uuid",
    }
    good = {
        "date": "2024-02-29",
        "date-time": "2024-02-29T10:00:00.5+01:00",
        "time": "23:59:60Z",
        "email": '"joe bloggs"@[IPv6:::1]',
        "hostname": "xn--9n2bp8q.example",
        "ipv4": "192.0.2.1",
        "ipv6": "::ffff:192.0.2.1",
        "uri": "urn:isbn:0451450523",
        "uuid": "2EB8AA08-aa98-11ea-b4aa-73b441d16380",
    }
    assert set(bad) == set(ASSERTED_FORMATS)
    for name in ASSERTED_FORMATS:
        (problem,) = value_problems({"format": name}, bad[name])
        assert problem.code == VIOLATION and f"is not a '{name}'" in problem.message
        assert value_problems({"format": name}, good[name]) == []
        assert value_problems({"format": name}, 12) == []  # not a string: not checked
    for annotation in ("uri-reference", "duration", "regex", "idn-email", "my-own"):
        assert value_problems({"format": annotation}, "((( not that") == []


def test_ecma_unicode_property_names_run_on_re2() -> None:
    schema = {"pattern": "^\\p{Letter}+$", "propertyNames": {"pattern": "^\\p{gc=Lu}"}}
    assert schema_problems(schema, "$.inputs") == []
    assert value_problems(schema, "héllo") == []
    assert value_problems(schema, "h3llo") != []
    assert value_problems(schema, {"Élan": 1}) == []
    assert value_problems(schema, {"élan": 1}) != []  # not an upper-case letter first
    assert value_problems({"pattern": "^\\\\p{Letter}$"}, "\\p{Letter}") == []  # escaped
    (problem,) = schema_problems({"pattern": "\\p{LC}"}, "$.inputs")  # no such class in RE2
    assert problem.path == "$.inputs.pattern"


def test_a_payload_schema_gets_the_same_checks() -> None:
    """wait_for_signal's payload_schema (as ai response schemas and agent tool parameters)
    goes through the same functions: defaults, references and formats behave the same."""
    payload_schema = {
        "$id": "https://example.test/approval.json",
        "type": "object",
        "properties": {
            "by": {"$ref": "#person"},
            "at": {"type": "string", "format": "date-time", "default": "yesterday"},
        },
        "$defs": {"person": {"$anchor": "person", "type": "string", "format": "email"}},
    }
    document = {
        "id": "approve",
        "steps": [{"id": "wait", "type": "wait_for_signal", "signal": "approval",
                   "payload_schema": payload_schema, "output": "approval"}],
    }  # fmt: skip
    _, problems = check_definition(document)
    assert [(p.path, "does not satisfy its own schema" in p.message) for p in problems] == [
        ("$.steps[0].payload_schema.properties.at.default", True)
    ]
    payload_schema["properties"]["at"]["default"] = "2024-02-29T10:00:00Z"
    assert check_definition(document)[1] == []
    (problem,) = value_problems(payload_schema, {"by": "not an address"})
    assert problem.path == "$.by" and "is not a 'email'" in problem.message
    assert value_problems(payload_schema, {"by": "ada@example.test"}) == []


# -- the API: save and run --------------------------------------------------------------------


def definition(inputs: dict[str, Any], workflow_id: str = "schemas") -> dict[str, Any]:
    return {
        "id": workflow_id,
        "inputs": inputs,
        "steps": [{"id": "done", "type": "set", "values": {"ok": True}}],
    }


async def test_api_refuses_remote_refs_at_save_and_fetches_nothing(
    http: httpx.AsyncClient, tripwire: Tripwire, canary_file: Path
) -> None:
    for ref in remote_refs(tripwire, canary_file):
        for route in ("PUT /api/workflows/schemas", "POST /api/workflows/validate"):
            method, url = route.split()
            answer = await http.request(method, url, json=definition(with_ref(ref)))
            assert FILE_CANARY not in answer.text
            if method == "PUT":
                assert answer.status_code == 422, answer.text
                errors = answer.json()["errors"]
            else:
                assert answer.status_code == 200 and not answer.json()["valid"]
                errors = answer.json()["errors"]
            (error,) = errors
            assert error["path"] == "$.inputs.properties.x.$ref"
            assert "only local references" in error["message"]
    assert tripwire.accepted == 0
    assert (await http.get("/api/workflows/schemas")).status_code == 404  # nothing saved


async def test_api_refuses_a_run_of_a_document_saved_before_the_rules(
    http: httpx.AsyncClient, settings: Settings, tripwire: Tripwire, canary_file: Path
) -> None:
    for index, ref in enumerate(remote_refs(tripwire, canary_file)):
        workflow_id = f"old-{index}"
        # Stored unchecked, as an older version would have saved it.
        save_raw_definition(settings, workflow_id, definition(with_ref(ref), workflow_id))
        answer = await http.post(
            "/api/workflows/run", json={"workflow_id": workflow_id, "input_vars": {"x": "v"}}
        )
        assert answer.status_code == 422, answer.text
        assert "only local references" in answer.text
        assert FILE_CANARY not in answer.text
    assert tripwire.accepted == 0


async def test_api_stays_responsive_under_a_catastrophic_pattern(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    inputs = {"type": "object", "properties": {"code": {"type": "string", "pattern": CATASTROPHIC}}}
    saved = await http.put("/api/workflows/schemas", json=definition(inputs))
    assert saved.status_code == 201, saved.text

    async def attack() -> httpx.Response:
        return await http.post(
            "/api/workflows/run", json={"workflow_id": "schemas", "input_vars": {"code": EVIL_TEXT}}
        )

    started = time.monotonic()
    answers = await asyncio.gather(*(attack() for _ in range(4)), http.get("/healthz"))
    assert time.monotonic() - started < 5.0
    for answer in answers[:4]:
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["errors"]
        assert error["code"] == "invalid_input" and error["path"] == "$.input_vars.code"
        assert len(error["message"]) <= 300  # not the whole 50 kB value quoted back
    assert answers[4].status_code == 200
    good = await http.post(
        "/api/workflows/run", json={"workflow_id": "schemas", "input_vars": {"code": "aaa"}}
    )
    assert good.status_code == 202, good.text


async def test_api_refuses_unsupported_patterns_at_save(http: httpx.AsyncClient) -> None:
    inputs = {"properties": {"code": {"pattern": "^(?!admin).*$"}}}
    answer = await http.put("/api/workflows/schemas", json=definition(inputs))
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert error["path"] == "$.inputs.properties.code.pattern"
    assert "lookaround" in error["message"]


async def test_api_takes_inputs_declared_through_composition_and_checks_defaults(
    http: httpx.AsyncClient,
) -> None:
    inputs = {
        "allOf": [{"$ref": "#/$defs/who"}],
        "properties": {"email": {"type": "string", "format": "email"}},
        "$defs": {"who": {"properties": {"user": {"type": "string", "default": "ada"}}}},
    }
    saved = await http.put("/api/workflows/schemas", json=definition(inputs))
    assert saved.status_code in (200, 201), saved.text
    good = await http.post(
        "/api/workflows/run",
        json={"workflow_id": "schemas", "input_vars": {"email": "ada@example.test"}},
    )
    assert good.status_code == 202, good.text
    bad = await http.post(
        "/api/workflows/run",
        json={"workflow_id": "schemas", "input_vars": {"email": "2962", "colour": "red"}},
    )
    assert bad.status_code == 422, bad.text
    errors = {error["path"]: error for error in bad.json()["errors"]}
    assert set(errors) == {"$.input_vars.email", "$.input_vars.colour"}
    assert "declared: email, user" in errors["$.input_vars.colour"]["message"]
    inputs["$defs"]["who"]["properties"]["user"]["default"] = 7
    refused = await http.put("/api/workflows/schemas", json=definition(inputs))
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["errors"]
    assert error["path"] == "$.inputs.$defs.who.properties.user.default"


# -- the worker: ai response schemas ----------------------------------------------------------


def ai_definition(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "ai-schema",
        "steps": [
            {
                "id": "ask",
                "type": "ai",
                "model": "m",
                "prompt": "answer",
                "response_format": {"type": "json_schema", "schema": schema},
                "retry": {"max_attempts": 1},
                "repair_attempts": 0,  # one answer, its own error
                "output": "answer",
            }
        ],
    }


def test_response_schemas_are_checked_at_save(tripwire: Tripwire) -> None:
    from workflows.validation import check_definition

    _, problems = check_definition(ai_definition(with_ref(tripwire.url)))
    (problem,) = problems
    assert problem.path == "$.steps[0].response_format.schema.properties.x.$ref"
    assert "only local references" in problem.message


async def start_unchecked(client: Client, settings: Settings, document: dict[str, Any]) -> Any:
    """Start a document the way an older version would have saved it: shape-checked only."""
    definition = WorkflowDefinition.model_validate(document)
    return await client.start_workflow(
        WORKFLOW_TYPE,
        ExecutionInput(definition=definition, input_vars={}, definition_version=1),
        id=str(uuid.uuid4()),
        task_queue=settings.temporal_task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_DEFINITION_ID, definition.key),
            ]
        ),
    )


async def test_worker_refuses_an_old_response_schema_with_a_remote_ref(
    client: Client,
    settings: Settings,
    worker: Any,
    fake_openrouter: FakeOpenRouter,
    tripwire: Tripwire,
    canary_file: Path,
) -> None:
    for ref in (tripwire.url, canary_file.as_uri()):
        fake_openrouter.then(Reply(200, completion(json.dumps({"x": "v"}))))
        handle = await start_unchecked(client, settings, ai_definition(with_ref(ref)))
        state = await outcome(handle)
        assert state["status"] == "failed"
        assert state["error"]["type"] == FailureType.INVALID_REQUEST
        assert "only local references" in state["error"]["message"]
        assert FILE_CANARY not in json.dumps(state)
        assert (
            read_log(settings, handle.id)["steps"][0]["error_type"] == FailureType.INVALID_REQUEST
        )
    assert tripwire.accepted == 0


async def test_worker_checks_a_catastrophic_response_pattern_quickly(
    client: Client, settings: Settings, worker: Any, fake_openrouter: FakeOpenRouter
) -> None:
    schema = {"type": "object", "properties": {"code": {"pattern": CATASTROPHIC}}}
    fake_openrouter.then(Reply(200, completion(json.dumps({"code": EVIL_TEXT}))))
    started = time.monotonic()
    handle = await start_definition(client, settings, ai_definition(schema))
    state = await outcome(handle, timeout=20)
    assert time.monotonic() - started < 10
    assert state["status"] == "failed"
    assert state["error"]["type"] == FailureType.INVALID_MODEL_OUTPUT
    assert "at $.code" in state["error"]["message"]
