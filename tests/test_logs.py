"""WorkflowLogger: atomic, idempotent merges and rotation by count, age and size."""

from __future__ import annotations

import gzip
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.logs import InvalidExecutionId, RotationPolicy, WorkflowLogger
from workflows.shared import LogWrite, StepRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def entry(execution_id: str, status: str = "running", seq: int | None = None) -> LogWrite:
    step = None
    if seq is not None:
        step = StepRecord(
            seq=seq, step_id=f"s{seq}", name=f"step {seq}", type="set", start_time=NOW,
            end_time=NOW, status="success", output_vars={"v": seq},
        )  # fmt: skip
    return LogWrite(
        execution_id=execution_id, run_id="r", workflow_id="wf", status=status,  # type: ignore[arg-type]
        start_time=NOW, end_time=NOW if status != "running" else None, step=step,
    )  # fmt: skip


def test_writes_merge_and_retries_change_nothing(tmp_path: Path) -> None:
    logger = WorkflowLogger(tmp_path)
    logger.write(entry("e1"))
    logger.write(entry("e1", seq=0))
    logger.write(entry("e1", seq=1))
    once = (tmp_path / "e1.json").read_text()
    logger.write(entry("e1", seq=1))  # an activity retry of the same write
    assert (tmp_path / "e1.json").read_text() == once
    logger.write(entry("e1", status="completed"))
    document = logger.read("e1")
    assert document is not None
    assert [s["step_id"] for s in document["steps"]] == ["s0", "s1"]
    assert document["status"] == "completed"
    assert list(document)[:6] == [
        "execution_id", "workflow_id", "start_time", "end_time", "status", "steps",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1.json"]  # no temp files left


def test_a_fresh_logger_continues_a_file_another_wrote(tmp_path: Path) -> None:
    WorkflowLogger(tmp_path).write(entry("e2", seq=0))
    WorkflowLogger(tmp_path).write(entry("e2", seq=1))  # e.g. another worker after a crash
    document = json.loads((tmp_path / "e2.json").read_text())
    assert [s["seq"] for s in document["steps"]] == [0, 1]


def test_out_of_order_step_writes_end_sorted(tmp_path: Path) -> None:
    logger = WorkflowLogger(tmp_path)
    logger.write(entry("e3", seq=2))
    logger.write(entry("e3", seq=0))
    document = logger.read("e3")
    assert document is not None and [s["seq"] for s in document["steps"]] == [0, 2]


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "x" * 300, "a b"])
def test_ids_that_are_not_file_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidExecutionId):
        WorkflowLogger(tmp_path).path_for(bad)


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_rotation_compresses_then_deletes_and_never_touches_running_logs(tmp_path: Path) -> None:
    policy = RotationPolicy(
        compress_after_seconds=60, max_age_seconds=86400, max_files=3, max_total_bytes=10**9
    )
    logger = WorkflowLogger(tmp_path, policy)
    for index in range(5):
        logger.write(entry(f"done{index}", status="completed"))
        _age(tmp_path / f"done{index}.json", 3600 - index)  # done0 is the oldest
    logger.write(entry("live"))
    _age(tmp_path / "live.json", 10**6)  # old, but still running
    logger.write(entry("ancient", status="failed"))
    _age(tmp_path / "ancient.json", 10 * 86400)

    report = logger.rotate()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "live.json" in names  # running logs are never compressed or deleted
    assert "ancient.json" not in names and "ancient.json.gz" not in names  # past max age
    assert report.compressed == 6  # every finished log past compress_after
    assert len(names) == 3  # max_files: the oldest compressed logs went first
    assert names == ["done3.json.gz", "done4.json.gz", "live.json"]
    # Compressed logs are still readable through the logger (and so through the API).
    assert logger.read("done4") == json.loads(
        gzip.decompress((tmp_path / "done4.json.gz").read_bytes())
    )


def test_rotation_by_total_size(tmp_path: Path) -> None:
    policy = RotationPolicy(
        compress_after_seconds=10**9, max_age_seconds=10**9, max_files=100, max_total_bytes=1500
    )
    logger = WorkflowLogger(tmp_path, policy)
    for index in range(6):
        logger.write(entry(f"e{index}", status="completed"))
        _age(tmp_path / f"e{index}.json", 100 - index)
    size = (tmp_path / "e0.json").stat().st_size
    logger.rotate()
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert len(remaining) == 1500 // size
    assert remaining[-1] == "e5.json"  # newest kept
