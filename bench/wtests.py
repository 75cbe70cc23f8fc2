"""Wall time of a test file: 10 cases of a 20-step workflow on `wfe dev` (docs/testing.md).

    python -m bench.wtests [--rounds 3] [--cases 10]

Starts `wfe dev` on free loopback ports with a fresh storage directory and a known admin key,
saves a 20-step workflow (8 `http`, 4 `ai`, 4 `set`, 2 one-hour `delay`s, a `condition` and
an approval `wait_for_signal` with a one-day timeout), then runs a file of ``--cases`` cases
(every call mocked; half the cases approve after a virtual half day, half let the day pass)
``--rounds`` times, two ways: ``POST /api/workflows/{id}/test`` timed around the request, and
`wfe test FILE` timed as a process (its start-up included). Prints each round and the median;
the goal is under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from api.cli.devstack import free_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-wtests-admin-key-0123456789abcdef"
WORKFLOW_ID = "bench-tests"
GOAL_SECONDS = 10.0


def definition() -> dict[str, Any]:
    """20 steps: http and ai calls, sets, two hour-long delays, a branch, a one-day wait."""
    steps: list[dict[str, Any]] = []
    for i in range(4):
        steps.append(
            {"id": f"get{i}", "type": "http", "url": "http://127.0.0.1:9/x", "output": f"g{i}"}
        )
        steps.append(
            {
                "id": f"ask{i}",
                "type": "ai",
                "model": "m/x",
                "prompt": f"{{g{i}.json.n}}",
                "output": f"a{i}",
            }
        )
        steps.append({"id": f"set{i}", "type": "set", "values": {f"v{i}": f"{{a{i}.text}}"}})
    steps += [
        {"id": "wait1", "type": "delay", "seconds": 3600},
        {"id": "wait2", "type": "delay", "seconds": 3600},
        {
            "id": "approve",
            "type": "wait_for_signal",
            "signal": "approve",
            "timeout_seconds": 86400,
            "output": "decision",
            "on_error": {"next": "late"},
        },
        {
            "id": "route",
            "type": "condition",
            "branches": [{"when": "decision.ok == true", "next": "post0"}],
            "default": "late",
        },
    ]
    for i in range(3):
        steps.append(
            {
                "id": f"post{i}",
                "type": "http",
                "method": "POST",
                "url": "http://127.0.0.1:9/y",
                "json": {"v": "{v0}"},
                **({"next": "end"} if i == 2 else {}),
            }
        )
    steps.append({"id": "late", "type": "http", "url": "http://127.0.0.1:9/late"})
    assert len(steps) == 20
    return {"id": WORKFLOW_ID, "steps": steps}


def test_file(cases: int) -> dict[str, Any]:
    mocks: dict[str, Any] = {}
    for i in range(4):
        mocks[f"get{i}"] = {"result": {"json": {"n": i}}}
        mocks[f"ask{i}"] = {"result": {"text": f"answer {i}"}}
    for name in ("post0", "post1", "post2", "late"):
        mocks[name] = {"result": {"status": 201}}
    file_cases = []
    for n in range(cases):
        approved = n % 2 == 0
        signals = [{"name": "approve", "payload": {"ok": True}, "after_seconds": 43200}]
        file_cases.append(
            {
                "name": f"case {n} ({'approved' if approved else 'the day passes'})",
                "mocks": mocks,
                "signals": signals if approved else [],
                "expect": {
                    "status": "completed",
                    "outputs": {"v3": "answer 3"},
                    "steps": [s["id"] for s in definition()["steps"][:15]]
                    + (["route", "post0", "post1", "post2"] if approved else ["late"]),
                },
            }
        )
    return {"workflow_id": WORKFLOW_ID, "cases": file_cases}


def start_dev(storage: Path) -> tuple[subprocess.Popen[bytes], str]:
    ports = {name: free_port() for name in ("temporal", "ui", "api")}
    keys = storage / "keys.json"
    keys.write_text(json.dumps([{"key": KEY, "name": "bench", "role": "admin", "workflows": "*"}]))
    env = {**os.environ, "API_KEYS_FILE": str(keys), "PYTHONUNBUFFERED": "1"}
    argv = [
        str(Path(sys.executable).with_name("wfe")), "dev", "--storage", str(storage),
        "--temporal-port", str(ports["temporal"]), "--ui-port", str(ports["ui"]),
        "--api-port", str(ports["api"]), "--metrics-port", "0",
        "--examples", str(storage / "no-examples"),
    ]  # fmt: skip
    log = (storage / "dev.log").open("wb")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports['api']}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    raise SystemExit(f"wfe dev did not become ready (see {storage / 'dev.log'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-wtests-") as tmp:
        storage = Path(tmp)
        process, url = start_dev(storage)
        try:
            run(url, storage, args.rounds, args.cases)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)


def run(url: str, storage: Path, rounds: int, cases: int) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=300) as http:
        saved = http.put(f"/api/workflows/{WORKFLOW_ID}", json=definition())
        saved.raise_for_status()
        document = test_file(cases)
        path = storage / "bench.test.json"
        path.write_text(json.dumps(document))
        http.post(f"/api/workflows/{WORKFLOW_ID}/test", json=document).raise_for_status()  # warm
        api_times, cli_times = [], []
        for round_ in range(rounds):
            began = time.monotonic()
            report = http.post(f"/api/workflows/{WORKFLOW_ID}/test", json=document).json()
            api_times.append(time.monotonic() - began)
            assert report["failed"] == 0, report
            env = {**os.environ, "WFE_API_URL": url, "WFE_API_KEY": KEY}
            began = time.monotonic()
            done = subprocess.run(
                [str(Path(sys.executable).with_name("wfe")), "test", str(path)],
                env=env, capture_output=True, check=False,
            )  # fmt: skip
            cli_times.append(time.monotonic() - began)
            assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
            slowest = max(c["seconds"] for c in report["cases"])
            print(
                f"round {round_ + 1}: API {api_times[-1]:.2f} s, wfe test {cli_times[-1]:.2f} s "
                f"(slowest case {slowest:.2f} s)",
                flush=True,
            )
    api, cli = statistics.median(api_times), statistics.median(cli_times)
    verdict = "met" if cli < GOAL_SECONDS else "MISSED"
    print(
        f"{cases} cases x 20 steps: API median {api:.2f} s, wfe test median {cli:.2f} s "
        f"(goal < {GOAL_SECONDS:g} s: {verdict})"
    )


if __name__ == "__main__":
    main()
