"""The API for teams: versioned definitions, keys and scopes, listing, idempotent and waited
starts, schedules and webhooks, limits. Real uvicorn, real worker, real dev server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.runtime.settings import Settings
from api.server.triggers import SIGNATURE_HEADER, schedule_id, signed_headers
from tests.conftest import ADMIN_KEY, eventually, serve_api
from workflows.messages import SA_DEFINITION_VERSION, SA_STARTED_BY

KEYS = {
    "admin": ADMIN_KEY,
    "runner": "runner-key-alpha-0123456789",
    "viewer": "viewer-key-alpha-0123456789",
    "runner_all": "runner-key-all-0123456789",
}
TEAM_KEYS = [
    {"key": KEYS["admin"], "name": "test-admin", "role": "admin", "workflows": "*"},
    {"key": KEYS["runner"], "name": "alpha-runner", "role": "runner", "workflows": ["alpha"]},
    {"key": KEYS["viewer"], "name": "alpha-viewer", "role": "viewer", "workflows": ["alpha"]},
    {"key": KEYS["runner_all"], "name": "any-runner", "role": "runner", "workflows": "*"},
]
HOOK_SECRET = "hook-secret-for-tests"


def waiting(workflow_id: str, marker: str = "v1") -> dict[str, Any]:
    return {
        "id": workflow_id,
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "steps": [
            {"id": "wait", "type": "wait_for_signal", "signal": "go", "timeout_seconds": 60},
            {"id": "mark", "type": "set", "values": {"marker": marker}},
        ],
    }


def quick(workflow_id: str) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "steps": [{"id": "double", "type": "set", "values": {"n2": "{n}", "text": "n={n}"}}],
    }


@pytest.fixture
def team_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "api_keys": _secret(json.dumps(TEAM_KEYS)),
            "webhook_secrets": _secret(json.dumps({"default": HOOK_SECRET})),
        }
    )


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


@pytest.fixture
async def team(client: Client, team_settings: Settings, worker: Any) -> AsyncIterator[str]:
    async with serve_api(team_settings, client) as url:
        yield url


def as_role(base_url: str, role: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {KEYS[role]}"} if role else {}
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30)


async def put(api: httpx.AsyncClient, document: dict[str, Any]) -> httpx.Response:
    return await api.put(f"/api/workflows/{document['id']}", json=document)


# -- definitions ------------------------------------------------------------------------------


async def test_definitions_are_versioned_and_old_versions_stay_readable(team: str) -> None:
    async with as_role(team, "admin") as api:
        created = await put(api, quick("alpha"))
        assert created.status_code == 201, created.text
        assert created.json()["version"] == 1 and created.json()["created"] is True
        same = await put(api, quick("alpha"))
        assert same.status_code == 200
        assert same.json()["version"] == 1 and same.json()["changed"] is False
        changed = quick("alpha")
        changed["name"] = "renamed"
        second = await put(api, changed)
        assert second.json()["version"] == 2 and second.json()["changed"] is True
        assert second.json()["hash"] != created.json()["hash"]

        latest = (await api.get("/api/workflows/alpha")).json()
        assert latest["version"] == 2 and latest["versions"] == [1, 2]
        assert latest["definition"]["name"] == "renamed"
        first = (await api.get("/api/workflows/alpha", params={"version": 1})).json()
        assert "name" not in first["definition"]
        listed = (await api.get("/api/workflows")).json()["workflows"]
        assert [(w["workflow_id"], w["version"]) for w in listed] == [("alpha", 2)]

        assert (await api.delete("/api/workflows/alpha")).status_code == 204
        assert (await api.get("/api/workflows/alpha")).status_code == 404
        kept = await api.get("/api/workflows/alpha", params={"version": 2})
        assert kept.status_code == 200  # pinned runs can still be explained
        # Saving again continues the numbering: versions only grow.
        assert (await put(api, quick("alpha"))).json()["version"] == 3


async def test_invalid_definitions_are_422_with_paths_and_nothing_is_saved(
    team: str, team_settings: Settings
) -> None:
    bad = quick("alpha")
    bad["steps"].append({"id": "double", "type": "sett"})
    bad["steps"][0]["next"] = "nowhere"
    async with as_role(team, "admin") as api:
        response = await put(api, bad)
        assert response.status_code == 422
        paths = {e["path"] for e in response.json()["errors"]}
        assert "$.steps[1].type" in paths
        assert not (team_settings.workflow_definitions_dir / "alpha.json").exists()

        mismatch = await api.put("/api/workflows/beta", json=quick("alpha"))
        assert mismatch.status_code == 422 and mismatch.json()["errors"][0]["path"] == "$.id"
        reserved = await api.put("/api/workflows/run", json=quick("run"))
        assert reserved.status_code == 422

        checked = await api.post("/api/workflows/validate", json=bad)
        assert checked.status_code == 200
        assert checked.json()["valid"] is False and checked.json()["errors"]
        ok = await api.post("/api/workflows/validate", json=quick("x"))
        assert ok.json() == {"valid": True, "errors": []}
        not_json = await api.post(
            "/api/workflows/validate", content=b"{", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422


async def test_a_definition_saved_during_a_run_does_not_change_that_run(
    team: str, client: Client
) -> None:
    async with as_role(team, "admin") as api:
        await put(api, waiting("alpha", marker="v1"))
        started = (
            await api.post("/api/workflows/run", json={"workflow_id": "alpha", "input_vars": {}})
        ).json()
        assert started["definition_version"] == 1
        await put(api, waiting("alpha", marker="v2"))  # saved while the run waits
        execution_id = started["execution_id"]
        await api.post(f"/api/executions/{execution_id}/signals/go", json={})

        async def done() -> dict[str, Any] | None:
            body = (await api.get(f"/api/executions/{execution_id}")).json()
            return body if body["status"] == "completed" else None

        finished = await eventually(done)
        assert finished["outputs"]["marker"] == "v1"
        assert finished["definition_version"] == 1
        log = (await api.get(f"/api/executions/{execution_id}/log")).json()
        assert log["workflow_version"] == 1
        description = await client.get_workflow_handle(execution_id).describe()
        assert description.typed_search_attributes.get(SA_DEFINITION_VERSION) == 1
        assert description.typed_search_attributes.get(SA_STARTED_BY) == "test-admin"
        # A new run gets the new version.
        newer = (
            await api.post(
                "/api/workflows/run?wait=true&timeout=0.2",
                json={"workflow_id": "alpha", "input_vars": {}},
            )
        ).json()
        assert newer["definition_version"] == 2
        await api.post(f"/api/executions/{newer['execution_id']}/cancel")


async def test_concurrent_saves_never_interleave(team: str, team_settings: Settings) -> None:
    async with as_role(team, "admin") as api:
        documents = []
        for index in range(20):
            document = quick("alpha")
            document["description"] = f"edit {index}"
            documents.append(document)
        responses = await asyncio.gather(*(put(api, d) for d in documents))
        assert all(r.status_code in (200, 201) for r in responses)
        versions = sorted(r.json()["version"] for r in responses)
        assert versions == list(range(1, 21))
        history = (await api.get("/api/workflows/alpha")).json()["versions"]
        assert history == list(range(1, 21))
    leftovers = [p for p in team_settings.workflow_definitions_dir.rglob("*.tmp")]
    assert leftovers == []


# -- permissions ------------------------------------------------------------------------------


async def test_permission_matrix(team: str) -> None:
    """role x endpoint x in-scope/out-of-scope: 401, 403 and 404 exactly where they belong."""
    async with as_role(team, "admin") as admin:
        for workflow_id in ("alpha", "beta"):
            assert (await put(admin, waiting(workflow_id))).status_code in (200, 201)
        runs = {}
        for workflow_id in ("alpha", "beta"):
            body = {"workflow_id": workflow_id, "input_vars": {}}
            runs[workflow_id] = (await admin.post("/api/workflows/run", json=body)).json()[
                "execution_id"
            ]
        await eventually(lambda: _has_log(admin, runs["beta"]))
        await eventually(lambda: _has_log(admin, runs["alpha"]))

    def endpoints(workflow_id: str) -> list[tuple[str, str, str, Any]]:
        execution = runs[workflow_id]
        return [
            ("read", "GET", f"/api/workflows/{workflow_id}", None),
            ("read", "GET", f"/api/executions/{execution}", None),
            ("read", "GET", f"/api/executions/{execution}/log", None),
            ("run", "POST", "/api/workflows/run", {"workflow_id": workflow_id}),
            ("control", "POST", f"/api/executions/{execution}/signals/nudge", {}),
            ("manage", "PUT", f"/api/workflows/{workflow_id}", waiting(workflow_id)),
        ]

    allowed = {
        "admin": {"read", "run", "control", "manage"},
        "runner": {"read", "run", "control"},
        "viewer": {"read"},
    }
    scope = {"admin": {"alpha", "beta"}, "runner": {"alpha"}, "viewer": {"alpha"}}
    checked = 0
    for role in ("admin", "runner", "viewer", None):
        async with as_role(team, role) as api:
            for workflow_id in ("alpha", "beta"):
                for action, method, url, body in endpoints(workflow_id):
                    response = await api.request(method, url, json=body)
                    if role is None:
                        expected = 401
                    elif workflow_id not in scope[role]:
                        expected = 404
                    elif action not in allowed[role]:
                        expected = 403
                    else:
                        expected = 200 if method in ("GET", "PUT") else 202
                    assert response.status_code == expected, (role, method, url, response.text)
                    if expected >= 400:
                        assert set(response.json()) == {"errors"}
                    checked += 1
    assert checked == 48
    async with as_role(team, "admin") as admin:
        for execution in runs.values():
            await admin.post(f"/api/executions/{execution}/cancel")


async def test_bad_keys_and_listing_scope(team: str) -> None:
    async with httpx.AsyncClient(base_url=team) as anonymous:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
            response = await anonymous.get("/api/executions", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
        assert (await anonymous.get("/healthz")).status_code == 200
    async with as_role(team, "admin") as admin:
        await put(admin, quick("alpha"))
        await put(admin, quick("beta"))
        for workflow_id in ("alpha", "beta", "beta"):
            await admin.post(
                "/api/workflows/run?wait=true",
                json={"workflow_id": workflow_id, "input_vars": {"n": 1}},
            )
        everything = (await admin.get("/api/executions")).json()["executions"]
        assert sorted(e["workflow_id"] for e in everything) == ["alpha", "beta", "beta"]
    async with as_role(team, "viewer") as viewer:
        seen = (await viewer.get("/api/executions")).json()["executions"]
        assert [e["workflow_id"] for e in seen] == ["alpha"]
        assert (await viewer.get("/api/executions", params={"workflow_id": "beta"})).json()[
            "executions"
        ] == []
        assert [
            w["workflow_id"] for w in (await viewer.get("/api/workflows")).json()["workflows"]
        ] == ["alpha"]
        assert (await viewer.put("/api/workflows/gamma", json=quick("gamma"))).status_code == 404


async def test_listing_filters_and_paginates(team: str) -> None:
    async with as_role(team, "admin") as api:
        await put(api, quick("alpha"))
        await put(api, waiting("beta"))
        for n in range(5):
            await api.post(
                "/api/workflows/run?wait=true",
                json={"workflow_id": "alpha", "input_vars": {"n": n}},
            )
        waiting_run = (
            await api.post("/api/workflows/run", json={"workflow_id": "beta", "input_vars": {}})
        ).json()["execution_id"]

        async def listed(**params: Any) -> list[dict[str, Any]]:
            return (await api.get("/api/executions", params=params)).json()["executions"]

        await eventually(lambda: _count(listed(workflow_id="alpha", status="completed"), 5))
        running = await listed(status="running")
        assert [e["execution_id"] for e in running] == [waiting_run]
        assert running[0]["started_by"] == "test-admin"

        pages: list[str] = []
        token = None
        while True:
            params: dict[str, Any] = {"workflow_id": "alpha", "page_size": 2}
            if token:
                params["page_token"] = token
            body = (await api.get("/api/executions", params=params)).json()
            pages += [e["execution_id"] for e in body["executions"]]
            token = body["next_page_token"]
            if not token:
                break
        assert len(pages) == 5 and len(set(pages)) == 5
        bad = await api.get("/api/executions", params={"status": "exploded"})
        assert bad.status_code == 422
        bad_token = await api.get("/api/executions", params={"page_token": "!!notbase64"})
        assert bad_token.status_code == 422
        await api.post(f"/api/executions/{waiting_run}/cancel")


# -- idempotent and synchronous starts ------------------------------------------------------


async def test_idempotency_key_starts_exactly_one_execution(
    team: str, client: Client, task_queue: str
) -> None:
    async with as_role(team, "admin") as api:
        await put(api, waiting("alpha"))
        body = {"workflow_id": "alpha", "input_vars": {"n": 1}}
        headers = {"Idempotency-Key": "order-42"}
        answers = await asyncio.gather(
            *(api.post("/api/workflows/run", json=body, headers=headers) for _ in range(50))
        )
        assert {r.status_code for r in answers} == {202}
        ids = {(r.json()["execution_id"], r.json()["run_id"]) for r in answers}
        assert len(ids) == 1
        started = [w async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")]
        assert len(started) == 1

        conflict = await api.post(
            "/api/workflows/run",
            json={"workflow_id": "alpha", "input_vars": {"n": 2}},
            headers=headers,
        )
        assert conflict.status_code == 409
        assert conflict.json()["errors"][0]["code"] == "idempotency_conflict"
        ((execution_id, run_id),) = ids
        await api.post(f"/api/executions/{execution_id}/signals/go", json={})
        await eventually(lambda: _status_is(api, execution_id, "completed"))
        # After it finished, the same request still answers the same execution.
        again = await api.post("/api/workflows/run", json=body, headers=headers)
        assert again.status_code == 202
        assert (again.json()["execution_id"], again.json()["run_id"]) == (execution_id, run_id)


async def test_wait_returns_the_result_or_202_on_timeout(team: str) -> None:
    async with as_role(team, "admin") as api:
        await put(api, quick("alpha"))
        await put(api, waiting("beta"))
        done = await api.post(
            "/api/workflows/run?wait=true&timeout=30",
            json={"workflow_id": "alpha", "input_vars": {"n": 21}},
        )
        assert done.status_code == 200
        assert done.json()["status"] == "completed"
        assert done.json()["outputs"] == {"n": 21, "n2": 21, "text": "n=21"}
        slow = await api.post(
            "/api/workflows/run?wait=true&timeout=0.5",
            json={"workflow_id": "beta", "input_vars": {}},
        )
        assert slow.status_code == 202 and slow.json()["status"] == "running"
        assert slow.json()["run_id"]
        await api.post(f"/api/executions/{slow.json()['execution_id']}/cancel")


# -- triggers ---------------------------------------------------------------------------------


async def test_schedule_trigger_is_a_temporal_schedule_that_starts_runs(
    team: str, client: Client
) -> None:
    document = quick("alpha")
    document["triggers"] = [
        {"type": "schedule", "id": "hourly", "cron": "0 * * * *", "input_vars": {"n": 7}}
    ]
    async with as_role(team, "admin") as api:
        saved = await put(api, document)
        assert saved.status_code == 201, saved.text
        sid = schedule_id("alpha", "hourly")
        assert saved.json()["schedules"] == [sid]
        handle = client.get_schedule_handle(sid)
        description = await handle.describe()
        spec = description.schedule.spec
        assert len(spec.calendars) == 1  # Temporal stores the cron as a calendar spec
        assert [h.start for h in spec.calendars[0].hour] == [0] and spec.calendars[0].hour[
            0
        ].end == 23
        await handle.trigger()  # "trigger now", as from the Temporal UI

        async def scheduled_run() -> list[dict[str, Any]]:
            return (
                await api.get(
                    "/api/executions", params={"workflow_id": "alpha", "status": "completed"}
                )
            ).json()["executions"]

        (run,) = await eventually(scheduled_run)
        assert run["started_by"] == "schedule:hourly"
        state = (await api.get(f"/api/executions/{run['execution_id']}")).json()
        assert state["outputs"]["n2"] == 7

        bad = quick("alpha")
        bad["triggers"] = [{"type": "schedule", "cron": "0 * * * *", "input_vars": {"n": "x"}}]
        rejected = await put(api, bad)
        assert rejected.status_code == 422
        assert rejected.json()["errors"][0]["path"] == "$.triggers[0].input_vars.n"

        document["triggers"] = []
        await put(api, document)
        with pytest.raises(RPCError) as gone:
            await handle.describe()
        assert gone.value.status == RPCStatusCode.NOT_FOUND


async def test_webhook_with_a_good_signature_starts_a_run_and_bad_ones_start_nothing(
    team: str, client: Client, task_queue: str
) -> None:
    document = quick("alpha")
    document["triggers"] = [{"type": "webhook", "input_vars": {"n": "{body.order.count}"}}]
    async with as_role(team, "admin") as api:
        saved = await put(api, document)
        assert saved.json()["webhook"] == "/api/hooks/alpha"
    body = json.dumps({"order": {"count": 4}}).encode()
    async with httpx.AsyncClient(base_url=team) as sender:
        good = signed_headers(HOOK_SECRET.encode(), body, delivery="order-4")
        for headers in (
            {},
            {**good, SIGNATURE_HEADER: "sha256=" + "0" * 64},
            signed_headers(b"wrong-secret", body, delivery="order-4"),
        ):
            refused = await sender.post("/api/hooks/alpha", content=body, headers=headers)
            assert refused.status_code == 401, refused.text
        unknown = await sender.post("/api/hooks/nope", content=body, headers=good)
        assert unknown.status_code == 401
        assert [w async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")] == []

        accepted = await sender.post(
            "/api/hooks/alpha",
            content=body,
            headers={**good, "Content-Type": "application/json"},
        )
        assert accepted.status_code == 202, accepted.text
    async with as_role(team, "admin") as api:
        execution_id = accepted.json()["execution_id"]
        await eventually(lambda: _status_is(api, execution_id, "completed"))
        state = (await api.get(f"/api/executions/{execution_id}")).json()
        assert state["outputs"]["n2"] == 4
        assert state["started_by"] == "webhook:alpha"


# -- limits -----------------------------------------------------------------------------------


async def test_limits_answer_413_422_and_429(
    client: Client, team_settings: Settings, worker: Any
) -> None:
    limited = team_settings.model_copy(
        update={
            "api_rate_limit_per_minute": 60.0,
            "api_rate_limit_burst": 5,
            "definition_max_steps": 3,
            "api_max_input_bytes": 2048,
        }
    )
    async with serve_api(limited, client) as url, as_role(url, "admin") as api:
        huge = await api.post(
            "/api/workflows/run",
            content=b'{"workflow_id": "x", "input_vars": {"a": "' + b"x" * 3_000_000 + b'"}}',
            headers={"content-type": "application/json"},
        )
        assert huge.status_code == 413
        assert set(huge.json()) == {"errors"}
        too_many = quick("alpha")
        too_many["steps"] = [{"id": f"s{i}", "type": "set", "values": {"v": i}} for i in range(4)]
        response = await put(api, too_many)
        assert response.status_code == 422
        assert response.json()["errors"][0]["code"] == "too_many_steps"
        await put(api, quick("alpha"))
        big_input = await api.post(
            "/api/workflows/run", json={"workflow_id": "alpha", "input_vars": {"s": "y" * 5000}}
        )
        assert big_input.status_code == 413
        statuses = [(await api.get("/api/workflows")).status_code for _ in range(10)]
        assert 429 in statuses
        limited_response = await api.get("/api/workflows")
        assert limited_response.status_code == 429
        assert int(limited_response.headers["retry-after"]) >= 1
    async with serve_api(limited, client) as url, as_role(url, "viewer") as other:
        # Limits are per key: another key is not throttled by the admin's burst.
        assert (await other.get("/api/workflows")).status_code == 200


async def _has_log(api: httpx.AsyncClient, execution_id: str) -> bool:
    return (await api.get(f"/api/executions/{execution_id}/log")).status_code == 200


async def _status_is(api: httpx.AsyncClient, execution_id: str, status: str) -> bool:
    return (await api.get(f"/api/executions/{execution_id}")).json()["status"] == status


async def _count(listing: Any, expected: int) -> bool:
    return len(await listing) == expected
