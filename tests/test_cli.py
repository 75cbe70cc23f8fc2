"""The `wfe` command line against the real API (uvicorn), a real worker and the dev server.

The API is served on the test's own event loop, so every CLI call (blocking httpx) runs in a
thread: ``await wfe(...)``.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from activities.errors import SSRFBlocked
from activities.runtime.settings import Settings, load_settings
from activities.ssrf import AddressPolicy
from api.cli import app, dev_environment
from api.cli.devstack import free_port
from tests.conftest import ADMIN_KEY, eventually, save_definition

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()

QUICK = {
    "id": "quick",
    "name": "Doubles n",
    "inputs": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
    "steps": [
        {"id": "double", "type": "set", "name": "Double it", "values": {"n2": "{n}", "t": "n={n}"}},
        {"id": "label", "type": "set", "values": {"label": "done {t}"}},
    ],
}
FAILING = {
    "id": "failing",
    "steps": [
        {"id": "prepare", "type": "set", "values": {"who": "cli"}},
        {"id": "boom", "type": "fail", "message": "stopped by {who}"},
    ],
}
WAITING = {
    "id": "waiting",
    "steps": [
        {"id": "wait", "type": "wait_for_signal", "signal": "go", "output": "go"},
        {"id": "after", "type": "set", "values": {"by": "{go.by}"}},
    ],
}


async def wfe(url: str, *args: str, key: str | None = ADMIN_KEY) -> Result:
    """Run the CLI in a thread (the API lives on this event loop)."""
    env = {"WFE_API_URL": url, "WFE_API_KEY": key, "COLUMNS": "200", "NO_COLOR": "1"}
    result = await asyncio.to_thread(runner.invoke, app, list(args), env=env)
    assert_no_traceback(result)
    return result


def assert_no_traceback(result: Result) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"the CLI raised {result.exception!r}\n{result.output}")
    assert "Traceback" not in result.output, result.output


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def execution_id_of(result: Result) -> str:
    found = re.search(r"^execution_id: (\S+)$", result.stdout, re.MULTILINE)
    assert found, result.output
    return found.group(1)


def write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path


async def test_validate_good_bad_and_not_json(api_url: str, tmp_path: Path) -> None:
    good = await wfe(api_url, "validate", str(EXAMPLES / "hello-offline.json"))
    assert good.exit_code == 0, good.output
    assert good.stdout.strip() == "valid"

    broken = dict(QUICK, steps=[{"id": "a", "type": "nope"}, {"id": "b", "type": "set"}])
    bad = await wfe(api_url, "validate", str(write(tmp_path / "bad.json", broken)))
    assert bad.exit_code == 1, bad.output
    problems = bad.stdout.splitlines()
    assert problems and all(line.startswith("$") and ": " in line for line in problems)
    assert any(line.startswith("$.steps[0]") for line in problems), problems
    [summary] = error_lines(bad)
    assert summary.startswith(f"error: {tmp_path / 'bad.json'}: {len(problems)} problem")

    (tmp_path / "text.json").write_text("{ not json")
    not_json = await wfe(api_url, "validate", str(tmp_path / "text.json"))
    assert not_json.exit_code == 1
    [line] = error_lines(not_json)
    assert line.startswith(f"error: {tmp_path / 'text.json'}: not valid JSON: ")

    missing = await wfe(api_url, "validate", str(tmp_path / "missing.json"))
    assert missing.exit_code == 1
    assert len(error_lines(missing)) == 1 and "cannot read" in missing.stderr


async def test_push_directory_then_unchanged_then_new_version(api_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "defs"
    shutil.copytree(EXAMPLES, folder)

    first = await wfe(api_url, "push", str(folder))
    assert first.exit_code == 0, first.output
    assert re.search(r"^hello-offline: created$", first.stdout, re.MULTILINE)
    assert re.search(r"^ticket-triage: created$", first.stdout, re.MULTILINE)

    again = await wfe(api_url, "push", str(folder))
    assert again.exit_code == 0, again.output
    assert re.search(r"^hello-offline: unchanged \(v1\)$", again.stdout, re.MULTILINE)

    document = json.loads((folder / "hello-offline.json").read_text())
    document["description"] = "changed by the CLI test"
    write(folder / "hello-offline.json", document)
    dry = await wfe(api_url, "push", "--dry-run", str(folder))
    assert dry.exit_code == 0, dry.output
    assert re.search(r"^hello-offline: new version 2$", dry.stdout, re.MULTILINE)
    assert dry.stdout.rstrip().endswith("dry run: nothing was saved")
    changed = await wfe(api_url, "push", str(folder / "hello-offline.json"))
    assert changed.exit_code == 0, changed.output
    assert changed.stdout.strip() == "hello-offline: new version 2"

    # No "id": the file name is the id. One bad file: every problem, with its file and JSON
    # path, and nothing saved, not even the good new file.
    write(
        folder / "named-by-file.json", {"steps": [{"id": "s", "type": "set", "values": {"a": 1}}]}
    )
    write(folder / "zz-bad.json", {"id": "zz-bad", "steps": [{"id": "s", "type": "nope"}]})
    (folder / "zz-text.json").write_text("{ not json")
    mixed = await wfe(api_url, "push", str(folder))
    assert mixed.exit_code == 1, mixed.output
    assert mixed.stdout == ""
    bad_lines = [line for line in error_lines(mixed) if "zz-bad.json" in line]
    assert bad_lines and all(
        line.startswith(f"error: {folder / 'zz-bad.json'}: $.steps[0]") for line in bad_lines
    )
    assert any(
        line.startswith(f"error: {folder / 'zz-text.json'}: not valid JSON")
        for line in error_lines(mixed)
    )
    assert error_lines(mixed)[-1].endswith("nothing saved")
    missing = await wfe(api_url, "workflows")
    assert "named-by-file" not in missing.stdout
    (folder / "zz-bad.json").unlink()
    (folder / "zz-text.json").unlink()
    fixed = await wfe(api_url, "push", str(folder))
    assert fixed.exit_code == 0, fixed.output
    assert re.search(r"^named-by-file: created$", fixed.stdout, re.MULTILINE)

    listed = await wfe(api_url, "workflows")
    assert listed.exit_code == 0, listed.output
    assert re.search(r"hello-offline\s+v2\b", listed.stdout)
    assert "named-by-file" in listed.stdout


async def test_pull_diff_and_prune(api_url: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    write(source / "keep.json", dict(QUICK, id="keep"))
    write(source / "drop.json", dict(QUICK, id="drop"))
    assert (await wfe(api_url, "push", str(source))).exit_code == 0
    write(source / "keep.json", dict(QUICK, id="keep", description="second"))
    (source / "drop.json").unlink()
    pruned = await wfe(api_url, "push", "--prune", str(source))
    assert pruned.exit_code == 0, pruned.output
    assert "keep: new version 2" in pruned.stdout and "drop: deleted" in pruned.stdout

    copy = tmp_path / "copy"
    pulled = await wfe(api_url, "pull", str(copy))
    assert pulled.exit_code == 0, pulled.output
    assert json.loads((copy / "keep.json").read_text())["description"] == "second"
    assert not (copy / "drop.json").exists()
    # What was pulled pushes back unchanged.
    back = await wfe(api_url, "push", str(copy))
    assert "keep: unchanged (v2)" in back.stdout

    changed = await wfe(api_url, "diff", "keep", "1", "2")
    assert changed.exit_code == 0, changed.output
    assert "--- keep v1" in changed.stdout and "+++ keep v2" in changed.stdout
    assert '+  "description": "second",' in changed.stdout
    same = await wfe(api_url, "diff", "keep", "2", "2")
    assert same.stdout.strip() == "keep: v2 and v2 are the same"
    gone = await wfe(api_url, "diff", "keep", "1", "9")
    assert gone.exit_code == 1 and "no version 9" in gone.stderr


async def test_run_wait_shows_progress_and_outputs(api_url: str, settings: Settings) -> None:
    save_definition(settings, QUICK)
    result = await wfe(api_url, "run", "quick", "--input", '{"n": 21}', "--wait")
    assert result.exit_code == 0, result.output
    execution_id = execution_id_of(result)
    assert re.search(r"^run_id: \S+$", result.stdout, re.MULTILINE)
    assert re.search(r"✓ success\s+double\s+Double it\s+\d", result.stdout)
    assert re.search(r"✓ success\s+label\s", result.stdout)
    assert "status: completed" in result.stdout
    outputs = json.loads(result.stdout.split("outputs:\n", 1)[1])
    assert outputs["n2"] == 21 and outputs["label"] == "done n=21"
    assert result.stderr == ""

    status = await wfe(api_url, "status", execution_id)
    assert status.exit_code == 0, status.output
    assert re.search(r"status\s+completed", status.stdout)
    assert re.search(r"\bdouble\s+set\s+✓ success", status.stdout)

    raw = await wfe(api_url, "status", execution_id, "--json")
    assert json.loads(raw.stdout)["status"] == "completed"

    log = await wfe(api_url, "logs", execution_id)
    assert log.exit_code == 0, log.output
    document = json.loads(log.stdout)
    assert document["status"] == "completed"
    assert [s["step_id"] for s in document["steps"]] == ["double", "label"]
    table = await wfe(api_url, "logs", execution_id, "--steps")
    assert table.exit_code == 0 and "label" in table.stdout

    async def listed() -> Result | None:
        found = await wfe(api_url, "list", "--workflow", "quick", "--status", "completed")
        return found if execution_id in found.stdout else None

    found = await eventually(listed, timeout=10, interval=0.3)
    assert found.exit_code == 0 and re.search(r"quick v1\s+completed", found.stdout)

    quiet = await wfe(api_url, "run", "quick", "-i", '{"n": 1}', "-q")
    assert quiet.exit_code == 0 and re.fullmatch(r"\S+\n", quiet.stdout), quiet.output


async def test_run_of_failing_workflow_exits_1(api_url: str, settings: Settings) -> None:
    save_definition(settings, FAILING)
    result = await wfe(api_url, "run", "failing", "--wait")
    assert result.exit_code == 1, result.output
    assert re.search(r"✓ success\s+prepare", result.stdout)
    assert "status: failed" in result.stdout
    [line] = error_lines(result)
    assert line.startswith("error: execution failed at step 'boom': ")
    assert line.endswith("stopped by cli")


async def test_wait_timeout_then_status_signal_and_cancel(api_url: str, settings: Settings) -> None:
    save_definition(settings, WAITING)
    timed_out = await wfe(api_url, "run", "waiting", "--wait", "--timeout", "1")
    assert timed_out.exit_code == 2, timed_out.output
    execution_id = execution_id_of(timed_out)
    assert "running   wait" in timed_out.stdout
    [line] = error_lines(timed_out)
    assert line.startswith("error: timed out after 1s") and execution_id in line

    status = await wfe(api_url, "status", execution_id)
    assert status.exit_code == 0, status.output
    assert re.search(r"status\s+running", status.stdout)
    assert re.search(r"current step\s+wait", status.stdout)

    cancelled = await wfe(api_url, "cancel", execution_id, "--reason", "not needed")
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout.strip() == f"cancelling: {execution_id}"

    async def is_cancelled() -> bool:
        answer = await wfe(api_url, "status", execution_id, "--json")
        return json.loads(answer.stdout)["status"] == "cancelled"

    await eventually(is_cancelled, timeout=15, interval=0.3)
    again = await wfe(api_url, "cancel", execution_id)
    assert again.exit_code == 1
    [line] = error_lines(again)
    assert line.startswith("error: 409 execution_not_running: ")

    second = await wfe(api_url, "run", "waiting", "-q")
    other = second.stdout.strip()
    sent = await wfe(api_url, "signal", other, "go", "--payload", '{"by": "ada"}')
    assert sent.exit_code == 0, sent.output
    assert sent.stdout.strip() == f"delivered: go to {other}"

    async def signalled() -> dict[str, Any] | None:
        answer = json.loads((await wfe(api_url, "status", other, "--json")).stdout)
        return answer if answer["status"] == "completed" else None

    final = await eventually(signalled, timeout=15, interval=0.3)
    assert final["outputs"]["by"] == "ada"


async def test_quiet_prints_only_the_id_and_the_exit_status_tells(
    api_url: str, settings: Settings
) -> None:
    """`-q` is for scripts: stdout is the execution id alone, with --wait too; the exit status
    is the documented one (0 completed, 1 failed, 2 timed out), errors stay on stderr."""
    for document in (QUICK, FAILING, WAITING):
        save_definition(settings, document)

    done = await wfe(api_url, "run", "quick", "-i", '{"n": 2}', "-q", "--wait")
    assert done.exit_code == 0, done.output
    assert re.fullmatch(r"quick-[0-9a-f-]{36}\n", done.stdout), done.stdout
    assert done.stderr == ""
    state = json.loads((await wfe(api_url, "status", done.stdout.strip(), "--json")).stdout)
    assert state["status"] == "completed" and state["outputs"]["n2"] == 2

    failed = await wfe(api_url, "run", "failing", "--quiet", "--wait")
    assert failed.exit_code == 1, failed.output
    assert re.fullmatch(r"\S+\n", failed.stdout), failed.stdout
    [line] = error_lines(failed)
    assert line.startswith("error: execution failed at step 'boom': ")

    timed_out = await wfe(api_url, "run", "waiting", "-q", "--wait", "--timeout", "1")
    assert timed_out.exit_code == 2, timed_out.output
    waiting_id = timed_out.stdout.strip()
    assert timed_out.stdout == f"{waiting_id}\n"
    [line] = error_lines(timed_out)
    assert line.startswith("error: timed out after 1s") and waiting_id in line
    assert (await wfe(api_url, "cancel", waiting_id)).exit_code == 0


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        (None, "127.0.0.1:8123"),
        ("", "127.0.0.1:8123"),
        ("10.0.0.0/8, api.internal:8443", "127.0.0.1:8123,10.0.0.0/8,api.internal:8443"),
        ("10.0.0.0/8,127.0.0.1:8123", "127.0.0.1:8123,10.0.0.0/8"),
    ],
)
def test_wfe_dev_adds_its_api_to_the_users_http_allowed_hosts(
    tmp_path: Path, listed: str | None, expected: str
) -> None:
    """`wfe dev` lets HTTP steps reach its own API (the offline tour calls it); hosts the user
    lists in HTTP_ALLOWED_HOSTS are kept alongside, never instead. Other variables the user
    set win over the dev defaults."""
    environ = {"TEMPORAL_ADDRESS": "127.0.0.1:7999"}
    if listed is not None:
        environ["HTTP_ALLOWED_HOSTS"] = listed
    dev_environment(environ, tmp_path / "storage", 7233, 8233, 8123)
    assert environ["HTTP_ALLOWED_HOSTS"] == expected
    assert environ["TEMPORAL_ADDRESS"] == "127.0.0.1:7999"
    assert environ["TEMPORAL_UI_URL"] == "http://127.0.0.1:8233"

    # What the worker makes of it (the same settings and SSRF guard it builds at start).
    setting = load_settings(http_allowed_hosts=environ["HTTP_ALLOWED_HOSTS"]).http_allowed_hosts
    guard = AddressPolicy.from_setting(setting)
    guard.check_url("http://127.0.0.1:8123/readyz")  # the tour's HTTP step
    if listed:
        guard.check_url("http://10.1.2.3/")  # the user's own entry still holds
    with pytest.raises(SSRFBlocked):
        guard.check_url("http://127.0.0.1:8124/")  # only the API's port, not all of loopback


async def test_api_errors_are_one_line_each(api_url: str, settings: Settings) -> None:
    save_definition(settings, QUICK)
    unknown = await wfe(api_url, "run", "nope")
    assert unknown.exit_code == 1
    assert error_lines(unknown) == [
        "error: 404 workflow_not_found: $.workflow_id: no workflow named 'nope'"
    ]

    bad_input = await wfe(api_url, "run", "quick", "--input", '{"n": "x"}')
    assert bad_input.exit_code == 1
    [line] = error_lines(bad_input)
    assert line.startswith("error: 422 ") and "$.input_vars.n" in line

    missing = await wfe(api_url, "status", "no-such-execution")
    assert missing.exit_code == 1
    assert error_lines(missing) == [
        "error: 404 execution_not_found: no execution 'no-such-execution'"
    ]

    no_log = await wfe(api_url, "logs", "no-such-execution")
    assert no_log.exit_code == 1 and len(error_lines(no_log)) == 1

    bad_status = await wfe(api_url, "list", "--status", "sleeping")
    assert bad_status.exit_code == 1
    [line] = error_lines(bad_status)
    assert line.startswith("error: 422 invalid_request: $.status: status must be one of")

    not_json = await wfe(api_url, "run", "quick", "--input", "{n: 1}")
    assert not_json.exit_code == 1
    [line] = error_lines(not_json)
    assert line.startswith("error: --input is not valid JSON: ")


@pytest.mark.parametrize("key", ["wrong-key-0123456789", None])
async def test_bad_or_missing_key(api_url: str, key: str | None) -> None:
    result = await wfe(api_url, "list", key=key)
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith("error: 401 unauthorized: ")
    assert "WFE_API_KEY" in line
    assert result.stdout == ""


async def test_api_down() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["list"], ["run", "quick", "--wait"], ["push", str(EXAMPLES)]):
        result = await wfe(url, *args)
        assert result.exit_code == 1, result.output
        [line] = error_lines(result)
        assert line.startswith(f"error: cannot reach the API at {url} ("), line
        assert "make dev" in line


async def test_rerun_from_a_step_with_new_input_and_wait(api_url: str, settings: Settings) -> None:
    save_definition(settings, QUICK)
    source = execution_id_of(await wfe(api_url, "run", "quick", "--input", '{"n": 2}', "--wait"))
    again = await wfe(api_url, "rerun", source, "--from", "label", "--input", '{"n": 5}', "--wait")
    assert again.exit_code == 0, again.output
    assert f"rerun_of: {source}" in again.stdout
    assert "status: completed" in again.stdout and '"label": "done n=5"' in again.stdout
    quiet = await wfe(api_url, "rerun", source, "-q")
    assert quiet.exit_code == 0 and re.fullmatch(r"\S+\n", quiet.stdout), quiet.output
    unknown = await wfe(api_url, "rerun", source, "--from", "nope")
    assert unknown.exit_code == 1
    [line] = error_lines(unknown)
    assert "'nope' is not a step" in line
