"""The README's first command: `wfe dev` (what `make dev` runs) starts Temporal, the worker
and the API, creates and prints an admin key, runs the offline tour, and Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.dev import free_port

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(check: object, within: float) -> object:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            value = check()  # type: ignore[operator]
            if value:
                return value
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready within {within}s")


@pytest.mark.timeout(180)
def test_wfe_dev_runs_the_tour_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    ports = {name: free_port() for name in ("temporal", "ui", "api")}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("API_KEYS", "API_KEYS_FILE", "AUTH_DISABLED", "HTTP_ALLOWED_HOSTS")
    }
    env["PYTHONPATH"] = str(ROOT)
    wfe = Path(sys.executable).parent / "wfe"
    out = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [str(wfe), "dev", "--temporal-port", str(ports["temporal"]), "--ui-port",
         str(ports["ui"]), "--api-port", str(ports["api"])],
        cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = f"http://127.0.0.1:{ports['api']}"
    try:
        _wait_for(lambda: httpx.get(f"{api}/readyz", timeout=2).status_code == 200, 90)
        key = json.loads((tmp_path / "storage" / "api-keys.json").read_text())[0]["key"]
        printed = (tmp_path / "dev.log").read_text(errors="replace")
        assert key in printed and f"http://127.0.0.1:{ports['ui']}" in printed
        assert (tmp_path / "definitions" / "hello-offline.json").exists()
        headers = {"Authorization": f"Bearer {key}"}
        started = httpx.post(
            f"{api}/api/workflows/run",
            json={"workflow_id": "hello-offline",
                  "input_vars": {"name": "Ada", "api_url": api, "pause_seconds": 0}},
            headers=headers, timeout=10,
        )  # fmt: skip
        assert started.status_code == 202, started.text
        execution = f"{api}/api/executions/{started.json()['execution_id']}"
        _wait_for(
            lambda: httpx.get(execution, headers=headers).json()["current_step"] == "approval", 60
        )
        httpx.post(f"{execution}/signals/approval", json={"approved": True, "by": "me"},
                   headers=headers)  # fmt: skip
        done = _wait_for(
            lambda: (lambda b: b if b["status"] == "completed" else None)(
                httpx.get(execution, headers=headers).json()
            ),
            60,
        )
        assert done["outputs"]["outcome"] == "Hello Ada, the API answered 200. Approved by me."  # type: ignore[index]
        log = httpx.get(f"{execution}/log", headers=headers).json()
        assert log["status"] == "completed"
    finally:
        dev.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            dev.wait(40)
        finally:
            if dev.poll() is None:
                dev.kill()
            out.close()
    assert "stopped." in (tmp_path / "dev.log").read_text(errors="replace")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{api}/healthz", timeout=2)
    leftover = subprocess.run(
        ["pgrep", "-f", f"--port {ports['temporal']}"], capture_output=True, text=True
    )
    assert leftover.stdout.strip() == "", "the Temporal dev server outlived Ctrl-C"
