"""Webhooks cannot be blocked by unsigned floods nor replayed (docs/webhooks.md).

Signature first (a bad one is 401 and costs the real sender nothing), then a signed timestamp
within WEBHOOK_TOLERANCE_SECONDS, then replay refusal by delivery id, which Temporal enforces
through the execution's workflow id, so it holds across API processes and restarts. Real
uvicorn, real worker, real dev server; every request goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from activities.runtime.settings import Settings
from api.server.triggers import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signed_headers,
)
from tests.conftest import ADMIN_KEY, eventually, runs_on, serve_api

SECRET = b"hardening-hook-secret"


def hook_definition(workflow_id: str, wait: bool = False) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"id": "mark", "type": "set", "values": {"seen": "{n}"}}]
    if wait:
        steps.insert(
            0, {"id": "hold", "type": "wait_for_signal", "signal": "go", "timeout_seconds": 120}
        )
    return {
        "id": workflow_id,
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "triggers": [{"type": "webhook", "input_vars": {"n": "{body.n}"}}],
        "steps": steps,
    }


def hook_settings(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(
        update={"webhook_secrets": SecretStr(json.dumps({"default": SECRET.decode()})), **update}
    )


async def save(url: str, document: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as admin:
        saved = await admin.put(f"/api/workflows/{document['id']}", json=document)
        assert saved.status_code in (200, 201), saved.text


def body_for(n: int) -> bytes:
    return json.dumps({"n": n}).encode()


async def test_unsigned_floods_get_401_and_charge_nothing_to_the_real_sender(
    client: Client, settings: Settings, worker: Any, task_queue: str
) -> None:
    # Burst 3 and almost no refill: the sender's bucket is exactly three starts for the test.
    limited = hook_settings(
        settings,
        api_rate_limit_burst=3,
        api_rate_limit_per_minute=0.06,
        api_failed_auth_burst=10,
        api_failed_auth_per_minute=0.06,
    )
    async with serve_api(limited, client) as url:
        await save(url, hook_definition("alpha"))
        body = body_for(1)
        good = signed_headers(SECRET, body, delivery="real-0")
        floods: list[dict[str, str]] = [
            {},  # nothing
            {SIGNATURE_HEADER: sign(SECRET, "", "", body)},  # the old scheme's shape
            {**good, SIGNATURE_HEADER: "sha256=" + "0" * 64},
            signed_headers(b"not-the-secret", body, delivery="x-1"),
            {**good, TIMESTAMP_HEADER: "soon"},
            {**good, DELIVERY_HEADER: "has.a.dot"},
        ]
        async with httpx.AsyncClient(base_url=url, timeout=30) as sender:
            answers = [
                await sender.post("/api/hooks/alpha", content=body, headers=floods[i % 6])
                for i in range(60)
            ]
            # Unknown workflows answer exactly like a bad signature: nothing is revealed.
            unknown = await sender.post("/api/hooks/nope", content=body, headers=good)

            codes = [a.status_code for a in answers]
            assert set(codes) <= {401, 429}
            assert codes[:10] == [401] * 10  # the address's failed-attempt budget
            assert 429 in codes
            throttled = answers[codes.index(429)]
            assert throttled.json()["errors"][0]["code"] == "too_many_failed_attempts"
            assert int(throttled.headers["retry-after"]) >= 1
            messages = [a.json()["errors"][0]["message"] for a in answers[:6]]
            assert messages[0].startswith(f"{SIGNATURE_HEADER} is missing")
            assert messages[1].startswith(f"{TIMESTAMP_HEADER} is missing")
            assert messages[2].startswith(f"{SIGNATURE_HEADER} does not match")
            assert messages[3].startswith(f"{SIGNATURE_HEADER} does not match")
            assert messages[4].startswith(f"{TIMESTAMP_HEADER} must be the unix time")
            assert messages[5].startswith(f"{DELIVERY_HEADER} must be 1 to 128")
            assert unknown.status_code == 429  # still failing from a throttled address
            assert "does not match" in unknown.json()["errors"][0]["message"]
            assert await runs_on(client, task_queue) == []

            # The real sender, from the same address, still gets its full bucket: the flood
            # charged nothing to it, and the failed-attempt throttle never holds back a good
            # signature.
            for n in range(3):
                body = body_for(n)
                started = await sender.post(
                    "/api/hooks/alpha",
                    content=body,
                    headers=signed_headers(SECRET, body, delivery=f"real-{n}"),
                )
                assert started.status_code == 202, started.text
            body = body_for(3)
            over = await sender.post(
                "/api/hooks/alpha",
                content=body,
                headers=signed_headers(SECRET, body, delivery="real-3"),
            )
            assert over.status_code == 429
            assert over.json()["errors"][0]["code"] == "rate_limited"
            assert len(await runs_on(client, task_queue, 3)) == 3


async def test_timestamps_outside_the_tolerance_are_refused_naming_the_age_and_the_setting(
    client: Client, settings: Settings, worker: Any, task_queue: str
) -> None:
    async with serve_api(hook_settings(settings), client) as url:
        await save(url, hook_definition("alpha"))
        body = body_for(5)
        async with httpx.AsyncClient(base_url=url, timeout=30) as sender:
            old = int(time.time()) - 912
            stale = await sender.post(
                "/api/hooks/alpha",
                content=body,
                headers=signed_headers(SECRET, body, delivery="d-stale", timestamp=old),
            )
            assert stale.status_code == 401
            error = stale.json()["errors"][0]
            assert error["code"] == "timestamp_outside_tolerance"
            assert re.match(
                rf"{TIMESTAMP_HEADER} is 91[23] s old; the tolerance is 300 s "
                r"\(WEBHOOK_TOLERANCE_SECONDS\)",
                error["message"],
            ), error["message"]

            ahead = int(time.time()) + 400
            future = await sender.post(
                "/api/hooks/alpha",
                content=body,
                headers=signed_headers(SECRET, body, delivery="d-future", timestamp=ahead),
            )
            assert future.status_code == 401
            assert (
                "s in the future; the tolerance is 300 s" in future.json()["errors"][0]["message"]
            )

            # The signature is judged first: a stale timestamp badly signed is a bad signature
            # (an unsigned request learns nothing about the window).
            forged = signed_headers(b"not-the-secret", body, delivery="d-forged", timestamp=old)
            refused = await sender.post("/api/hooks/alpha", content=body, headers=forged)
            assert refused.json()["errors"][0]["code"] == "invalid_signature"

            # Moving a captured request's timestamp forward breaks its signature.
            captured = signed_headers(SECRET, body, delivery="d-moved", timestamp=old)
            moved = {**captured, TIMESTAMP_HEADER: str(int(time.time()))}
            refused = await sender.post("/api/hooks/alpha", content=body, headers=moved)
            assert refused.json()["errors"][0]["code"] == "invalid_signature"
            assert await runs_on(client, task_queue) == []

    # The window is a setting.
    narrow = hook_settings(settings, webhook_tolerance_seconds=30)
    async with serve_api(narrow, client) as url, httpx.AsyncClient(base_url=url) as sender:
        minute_ago = int(time.time()) - 60
        refused = await sender.post(
            "/api/hooks/alpha",
            content=body,
            headers=signed_headers(SECRET, body, delivery="d-60", timestamp=minute_ago),
        )
        assert refused.status_code == 401
        assert "the tolerance is 30 s" in refused.json()["errors"][0]["message"]
        fresh = await sender.post(
            "/api/hooks/alpha",
            content=body,
            headers=signed_headers(SECRET, body, delivery="d-now"),
        )
        assert fresh.status_code == 202, fresh.text
    assert len(await runs_on(client, task_queue, 1)) == 1


async def test_a_replayed_delivery_is_200_duplicate_in_every_api_process_and_after_a_restart(
    client: Client, settings: Settings, worker: Any, task_queue: str
) -> None:
    configured = hook_settings(settings)
    body = body_for(7)
    captured = signed_headers(SECRET, body, delivery="evt_0001")
    async with serve_api(configured, client) as first:
        await save(first, hook_definition("alpha", wait=True))
        async with httpx.AsyncClient(base_url=first, timeout=30) as sender:
            started = await sender.post("/api/hooks/alpha", content=body, headers=captured)
            assert started.status_code == 202, started.text
            execution_id = started.json()["execution_id"]
            replay = await sender.post("/api/hooks/alpha", content=body, headers=captured)
        # Senders retry anything but a 2xx: a redelivery succeeds, naming the first run.
        assert replay.status_code == 200, replay.text
        assert replay.json() == {"execution_id": execution_id, "duplicate": True}

        # A second API process shares nothing with the first but Temporal.
        async with (
            serve_api(configured, client) as second,
            httpx.AsyncClient(base_url=second, timeout=30) as other,
        ):
            replay = await other.post("/api/hooks/alpha", content=body, headers=captured)
            assert replay.json() == {"execution_id": execution_id, "duplicate": True}
            # Changing the delivery id of a captured request breaks its signature.
            renamed = {**captured, DELIVERY_HEADER: "evt_0002"}
            forged = await other.post("/api/hooks/alpha", content=body, headers=renamed)
            assert forged.status_code == 401

    # A restarted API (a fresh process state) still refuses it, while the run waits ...
    async with (
        serve_api(configured, client) as restarted,
        httpx.AsyncClient(base_url=restarted, timeout=30) as sender,
    ):
        replay = await sender.post("/api/hooks/alpha", content=body, headers=captured)
        assert replay.json() == {"execution_id": execution_id, "duplicate": True}
        # ... and after it has finished (REJECT_DUPLICATE on the closed execution).
        admin_headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(
            base_url=restarted, headers=admin_headers, timeout=30
        ) as admin:
            await admin.post(f"/api/executions/{execution_id}/signals/go", json={})

            async def completed() -> bool:
                state = (await admin.get(f"/api/executions/{execution_id}")).json()
                return bool(state["status"] == "completed")

            await eventually(completed)
            state = (await admin.get(f"/api/executions/{execution_id}")).json()
            assert state["outputs"]["seen"] == 7
            assert state["started_by"] == "webhook:alpha"
        resigned = signed_headers(SECRET, body, delivery="evt_0001")  # a retry, signed anew
        replay = await sender.post("/api/hooks/alpha", content=body, headers=resigned)
        assert replay.status_code == 200, replay.text
        assert replay.json() == {"execution_id": execution_id, "duplicate": True}
    assert await runs_on(client, task_queue, 1) == [execution_id]


async def test_concurrent_copies_of_one_delivery_across_two_processes_start_one_run(
    client: Client, settings: Settings, worker: Any, task_queue: str
) -> None:
    configured = hook_settings(settings)
    body = body_for(9)
    captured = signed_headers(SECRET, body, delivery="burst-1")
    async with serve_api(configured, client) as one, serve_api(configured, client) as two:
        await save(one, hook_definition("alpha", wait=True))
        async with httpx.AsyncClient(timeout=30) as sender:
            answers = await asyncio.gather(
                *(
                    sender.post(
                        f"{(one, two)[i % 2]}/api/hooks/alpha", content=body, headers=captured
                    )
                    for i in range(20)
                )
            )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200] * 19 + [202], [
            a.text for a in answers if a.status_code not in (200, 202)
        ]
        (winner,) = [a.json()["execution_id"] for a in answers if a.status_code == 202]
        assert {a.json()["execution_id"] for a in answers} == {winner}
        assert await runs_on(client, task_queue, 1) == [winner]
        admin_headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=one, headers=admin_headers, timeout=30) as admin:
            await admin.post(f"/api/executions/{winner}/cancel")


async def test_replays_do_not_use_up_the_senders_rate_limit(
    client: Client, settings: Settings, worker: Any, task_queue: str
) -> None:
    limited = hook_settings(settings, api_rate_limit_burst=3, api_rate_limit_per_minute=0.06)
    async with (
        serve_api(limited, client) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as sender,
    ):
        await save(url, hook_definition("alpha"))
        body = body_for(0)
        captured = signed_headers(SECRET, body, delivery="once")
        assert (
            await sender.post("/api/hooks/alpha", content=body, headers=captured)
        ).status_code == 202
        for _ in range(10):
            replay = await sender.post("/api/hooks/alpha", content=body, headers=captured)
            assert replay.json()["duplicate"] is True, replay.text
        # Two tokens are left of the three: the ten replays took none.
        for n in (1, 2):
            body = body_for(n)
            headers = signed_headers(SECRET, body, delivery=f"next-{n}")
            assert (
                await sender.post("/api/hooks/alpha", content=body, headers=headers)
            ).status_code == 202
        body = body_for(3)
        headers = signed_headers(SECRET, body, delivery="next-3")
        assert (
            await sender.post("/api/hooks/alpha", content=body, headers=headers)
        ).status_code == 429
    assert len(await runs_on(client, task_queue, 3)) == 3


DOC = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"


def doc_block(language: str) -> str:
    (block,) = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)
    return str(block)


def test_the_documented_test_vector_is_what_the_api_computes() -> None:
    expected = re.search(r"X-Signature-256: (sha256=[0-9a-f]{64})", DOC.read_text())
    assert expected is not None
    computed = sign(b"a-long-random-string", 1767225600, "evt_1", b'{"order":{"count":4}}')
    assert computed == expected.group(1)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")), reason="no curl")
async def test_the_documented_python_and_curl_senders_start_runs(
    client: Client, settings: Settings, worker: Any, task_queue: str
) -> None:
    document = hook_definition("orders")
    document["triggers"][0]["input_vars"] = {"n": "{body.order.count}"}
    async with serve_api(hook_settings(settings), client) as url:
        await save(url, document)
        env = {
            **os.environ,
            "WEBHOOK_URL": f"{url}/api/hooks/orders",
            "WEBHOOK_SECRET": SECRET.decode(),
        }
        answers = []
        for program in (
            [sys.executable, "-c", doc_block("python")],
            ["bash", "-euo", "pipefail", "-c", doc_block("sh")],
        ):
            done = await asyncio.to_thread(
                subprocess.run, program, env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
            answers.append(done.stdout)
    assert answers[0].startswith("202 "), answers[0]
    assert json.loads(answers[1])["status"] == "running", answers[1]
    assert len(await runs_on(client, task_queue, 2)) == 2
