import asyncio
import json

from tests.conftest import save_definition


async def test_api_flow(http, settings, fake_openrouter, sink):
    doc = {
        "id": "flow",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer", "default": 3}}},
        "steps": [
            {"id": "ask", "type": "ai", "model": "m", "prompt": "hi {n}", "output": "answer"},
            {"id": "wait", "type": "wait_for_signal", "signal": "approval", "output": "approval"},
            {
                "id": "h",
                "type": "http",
                "method": "POST",
                "url": sink.url + "/hook",
                "json": {"a": "{approval}"},
                "output": "resp",
            },
            {"id": "d", "type": "delay", "seconds": 30},
        ],
    }
    save_definition(settings, doc)
    r = await http.post("/api/workflows/run", json={"workflow_id": "flow", "input_vars": {}})
    print(r.status_code, r.json())
    eid = r.json()["execution_id"]
    await asyncio.sleep(1)
    print((await http.get(f"/api/executions/{eid}")).json())
    r = await http.post(f"/api/executions/{eid}/signals/approval", json={"approved": True})
    print(r.status_code, r.json())
    await asyncio.sleep(1)
    print((await http.get(f"/api/executions/{eid}")).json()["current_step"])
    r = await http.post(f"/api/executions/{eid}/cancel")
    print(r.status_code, r.json())
    await asyncio.sleep(1.5)
    print(json.dumps((await http.get(f"/api/executions/{eid}")).json(), indent=1)[:3000])
    print(json.dumps((await http.get(f"/api/executions/{eid}/log")).json(), indent=1)[:3000])
    r = await http.post(f"/api/executions/{eid}/cancel")
    print(r.status_code, r.json())
    print((await http.get("/api/executions/nope")).json())
    r = await http.post(
        "/api/workflows/run", data={"workflow_id": "flow", "input_vars": '{"n": "x"}'}
    )
    print(r.status_code, r.json())
