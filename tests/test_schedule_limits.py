"""Schedule triggers are checked before a save moves the version: what Temporal refuses (a
bad cron, `@every 0s`, an unknown time zone) is a 422 naming the trigger's path and nothing is
saved, the live schedule keeps its spec; definitions hold at most DEFINITION_MAX_TRIGGERS
triggers and fire at most every SCHEDULE_MIN_INTERVAL_SECONDS. Real API, real Temporal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import ADMIN_KEY, eventually, serve_api

STEPS = [{"id": "a", "type": "set", "values": {"x": 1}}]


def scheduled(**trigger: Any) -> dict[str, Any]:
    return {
        "id": "nightly",
        "triggers": [{"type": "schedule", "id": "tick", **trigger}],
        "steps": STEPS,
    }


@pytest.fixture
async def api(settings: Settings, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_api(settings, client) as url,
        httpx.AsyncClient(
            base_url=url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as http,
    ):
        yield http


async def scratch_schedules(client: Client) -> list[str]:
    return [entry.id async for entry in await client.list_schedules() if "check" in entry.id]


def refused(answer: httpx.Response, code: str, path: str) -> str:
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert (error["code"], error["path"]) == (code, path), error
    return str(error["message"])


async def test_a_spec_temporal_refuses_saves_nothing(
    api: httpx.AsyncClient, client: Client
) -> None:
    saved = await api.put("/api/workflows/nightly", json=scheduled(cron="0 9 * * *"))
    assert saved.status_code == 201, saved.text
    assert saved.json()["version"] == 1
    handle = client.get_schedule_handle("wfe:nightly:tick")

    message = refused(
        await api.put("/api/workflows/nightly", json=scheduled(cron="@every 0s")),
        "invalid_schedule",
        "$.triggers[0].cron",
    )
    print("@every 0s:", message)
    assert "interval is too small" in message
    bad_zone = scheduled(cron="0 9 * * *", time_zone="Mars/Olympus")
    message = refused(
        await api.put("/api/workflows/nightly", json=bad_zone),
        "invalid_schedule",
        "$.triggers[0].time_zone",
    )
    assert "Mars/Olympus" in message
    refused(
        await api.put("/api/workflows/nightly", json=scheduled(cron="61 * * * *")),
        "invalid_schedule",
        "$.triggers[0].cron",
    )
    # Nothing moved: the version, and the live schedule's spec (09:00).
    assert (await api.get("/api/workflows/nightly")).json()["version"] == 1
    spec = (await handle.describe()).schedule.spec
    assert [r.start for r in spec.calendars[0].hour] == [9]
    # /validate says the same, without saving.
    checked = await api.post("/api/workflows/validate", json=scheduled(cron="@every 0s"))
    assert checked.json()["valid"] is False
    assert checked.json()["errors"][0]["path"] == "$.triggers[0].cron"
    # The scratch schedules the checks made are gone.
    await eventually(lambda: _none_left(client), timeout=20, interval=0.5)


async def _none_left(client: Client) -> bool:
    return not await scratch_schedules(client)


async def test_triggers_are_capped_and_schedules_fire_at_most_every_minute(
    api: httpx.AsyncClient, settings: Settings, client: Client
) -> None:
    many = {
        "id": "many",
        "triggers": [
            {"type": "schedule", "id": f"t{i}", "interval_seconds": 3600} for i in range(11)
        ],
        "steps": STEPS,
    }
    message = refused(
        await api.put("/api/workflows/many", json=many), "too_many_triggers", "$.triggers"
    )
    assert "DEFINITION_MAX_TRIGGERS" in message
    assert (await api.get("/api/workflows/many")).status_code == 404
    many["triggers"] = many["triggers"][:10]
    assert (await api.put("/api/workflows/many", json=many)).status_code == 201

    message = refused(
        await api.put("/api/workflows/nightly", json=scheduled(interval_seconds=1)),
        "schedule_too_frequent",
        "$.triggers[0].interval_seconds",
    )
    assert "SCHEDULE_MIN_INTERVAL_SECONDS" in message
    for cron in ("* * * * * * *", "@every 30s", "0,30 * * * * * *"):
        answer = await api.put("/api/workflows/nightly", json=scheduled(cron=cron))
        refused(answer, "schedule_too_frequent", "$.triggers[0].cron")
    assert (await api.get("/api/workflows/nightly")).status_code == 404
    for cron in ("* * * * *", "@every 60s", "0 9 * * MON-FRI"):
        answer = await api.put("/api/workflows/nightly", json=scheduled(cron=cron))
        assert answer.status_code in (200, 201), (cron, answer.text)

    # An operator may ask for less: every 5 minutes is then too often.
    slower = settings.model_copy(update={"schedule_min_interval_seconds": 600})
    async with (
        serve_api(slower, client) as url,
        httpx.AsyncClient(base_url=url, headers=api.headers, timeout=30) as strict,
    ):
        refused(
            await strict.put("/api/workflows/nightly", json=scheduled(cron="*/5 * * * *")),
            "schedule_too_frequent",
            "$.triggers[0].cron",
        )
        ok = await strict.put("/api/workflows/nightly", json=scheduled(cron="*/10 * * * *"))
        assert ok.status_code == 200, ok.text
