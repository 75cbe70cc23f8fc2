"""CEL errors as people meet them: at save time (422 with the expression's JSON path) and when
a run evaluates an expression (the run fails InvalidCondition with the same kind of message)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import eventually


async def test_bad_cel_is_refused_at_save_with_its_path_place_and_hint(
    http: httpx.AsyncClient,
) -> None:
    document = {
        "id": "cel-save",
        "inputs": {"type": "object", "properties": {"ticket": {"type": "object"}}},
        "steps": [
            {
                "id": "route",
                "type": "condition",
                "branches": [{"when": "ticket.priority = 'high' and ok", "next": "end"}],
            }
        ],
    }
    saved = await http.put("/api/workflows/cel-save", json=document)
    assert saved.status_code == 422, saved.text
    (problem,) = saved.json()["errors"]
    assert problem["path"] == "$.steps[0].branches[0].when"
    assert "invalid CEL expression at 1:17" in problem["message"]
    assert "compare with '=='" in problem["message"]
    assert "'&&' for 'and'" in problem["message"]

    document["steps"][0]["branches"][0]["when"] = "ticket.priority == high"
    saved = await http.put("/api/workflows/cel-save", json=document)
    assert saved.status_code == 422, saved.text
    (problem,) = saved.json()["errors"]
    assert problem["path"] == "$.steps[0].branches[0].when"
    assert "reads 'high', which is not an input or an earlier step's output" in problem["message"]
    assert "quote it: 'high'" in problem["message"] and "{{" not in problem["message"]


async def test_an_evaluation_error_fails_the_run_with_words_and_a_hint(
    http: httpx.AsyncClient,
) -> None:
    document = {
        "id": "cel-run",
        "inputs": {"type": "object", "properties": {"order": {"type": "object"}}},
        "steps": [{"id": "calc", "type": "set", "compute": {"d": "order.discount * 2"}}],
    }
    saved = await http.put("/api/workflows/cel-run", json=document)
    assert saved.status_code in (200, 201), saved.text
    started = await http.post(
        "/api/workflows/run", json={"workflow_id": "cel-run", "input_vars": {"order": {"a": 1}}}
    )
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]

    async def failed() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] == "failed" else None

    done = await eventually(failed, timeout=30)
    assert done["error"]["type"] == "InvalidCondition"
    assert "no key 'discount' in the map" in done["error"]["message"]
    assert "has(order.discount)" in done["error"]["message"]
