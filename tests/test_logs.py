"""WorkflowLogger: atomic, idempotent merges and rotation by count, age and size."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from activities.errors import InvalidExecutionId
from activities.log_files import JournalAppender
from activities.log_journals import FileJournal
from activities.log_rotation import RotationPolicy
from activities.logs import FOLD_AFTER_WRITES, FOLD_EVERY_SECONDS, FOLD_GROWTH, WorkflowLogger
from activities.runtime.storage import FileStorage
from workflows.messages import LogWrite, StepRecord

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


def test_an_overtaken_running_write_never_reopens_a_closed_log(tmp_path: Path) -> None:
    """A cancelled log write's thread can finish after the run's final write: the log stays
    closed and the step stays finished (the race behind a `running` log of a cancelled run)."""
    running_step = StepRecord(
        seq=0, step_id="wait", name="wait", type="wait_for_signal", start_time=NOW, run_id="r"
    )
    closed_step = running_step.model_copy(update={"status": "cancelled", "end_time": NOW})
    stale = entry("e9").model_copy(update={"steps": [running_step]})
    final = entry("e9", status="cancelled").model_copy(update={"steps": [closed_step]})
    for logger in (WorkflowLogger(tmp_path), None):
        (logger or WorkflowLogger(tmp_path)).write(final)
        (logger or WorkflowLogger(tmp_path)).write(stale)  # the overtaken write lands last
        document = WorkflowLogger(tmp_path).read("e9")
        assert document is not None
        assert document["status"] == "cancelled" and document["end_time"] is not None
        assert [s["status"] for s in document["steps"]] == ["cancelled"]
    # A later run of the same execution (a reset) writes its own header.
    WorkflowLogger(tmp_path).write(stale.model_copy(update={"run_id": "r2", "steps": []}))
    document = WorkflowLogger(tmp_path).read("e9")
    assert document is not None and document["status"] == "running"
    assert document["run_id"] == "r2"


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "x" * 300, "a b"])
def test_ids_that_are_not_file_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidExecutionId):
        WorkflowLogger(tmp_path).key_for(bad)


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


# -- the journal of activity steps' writes (activities/log_files.py) --------------------------


def steps_of(document: dict[str, Any] | None) -> list[int]:
    assert document is not None
    return [s["seq"] for s in document["steps"]]


def test_activity_writes_go_to_the_journal_and_readers_see_them(tmp_path: Path) -> None:
    logger = WorkflowLogger(tmp_path)
    logger.append(entry("j1", seq=0))  # the first write creates the document
    assert steps_of(json.loads((tmp_path / "j1.json").read_text())) == [0]
    logger.append(entry("j1", seq=1))
    logger.append(entry("j1", seq=2))
    logger.append(entry("j1", seq=2))  # an activity retry
    journal = tmp_path / ".j1.journal"
    assert len(journal.read_text().splitlines()) == 3
    assert steps_of(json.loads((tmp_path / "j1.json").read_text())) == [0]  # not yet folded
    assert steps_of(logger.read("j1")) == [0, 1, 2]  # what the API shows
    logger.write(entry("j1", status="completed"))  # the workflow's own (final) write folds
    assert not journal.exists()
    document = json.loads((tmp_path / "j1.json").read_text())
    assert steps_of(document) == [0, 1, 2] and document["status"] == "completed"


def test_the_periodic_fold_rebuilds_due_documents_once_however_many_steps_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("activities.logs.time.monotonic", lambda: clock[0])
    logger = WorkflowLogger(tmp_path)
    logger.append(entry("j2", seq=0))  # the first write creates the document
    for seq in range(1, 40):
        logger.append(entry("j2", seq=seq))  # steps only append, however long apart
        clock[0] += 1.0
    assert steps_of(json.loads((tmp_path / "j2.json").read_text())) == [0]
    assert steps_of(logger.read("j2")) == list(range(40))  # readers merge the journal
    assert logger.fold_due(older_than=FOLD_EVERY_SECONDS) == 1  # one rewrite for 39 steps
    assert steps_of(json.loads((tmp_path / "j2.json").read_text())) == list(range(40))
    assert json.loads((tmp_path / "j2.json").read_text())["status"] == "running"
    assert not (tmp_path / ".j2.journal").exists()
    logger.append(entry("j2", seq=40))
    assert logger.fold_due(older_than=FOLD_EVERY_SECONDS) == 0  # not yet due
    clock[0] += FOLD_EVERY_SECONDS
    assert logger.fold_due(older_than=FOLD_EVERY_SECONDS) == 1
    assert steps_of(json.loads((tmp_path / "j2.json").read_text())) == list(range(41))
    # Steps in quick succession: due once the journal holds FOLD_AFTER_WRITES writes.
    for seq in range(41, 41 + FOLD_AFTER_WRITES - 1):
        logger.append(entry("j2", seq=seq))
    assert logger.fold_due() == 0
    logger.append(entry("j2", seq=41 + FOLD_AFTER_WRITES - 1))
    assert logger.fold_due() == 1
    assert steps_of(logger.read("j2")) == list(range(41 + FOLD_AFTER_WRITES))


def test_a_long_log_is_folded_after_a_quarter_of_its_length_in_writes(tmp_path: Path) -> None:
    """A fold rewrites the whole document: a log of 1,000 records waits for 250 writes, not
    32 (a foreach of 10,000 items rewrote its growing log some 300 times)."""
    logger = WorkflowLogger(tmp_path)
    logger.append(entry("j5", seq=0))
    for seq in range(1, 1000):
        logger.append(entry("j5", seq=seq))
        if seq % FOLD_AFTER_WRITES == 0:
            logger.fold_due()
    folded = len(steps_of(json.loads((tmp_path / "j5.json").read_text())))
    assert 500 <= folded < 1000  # folded as it grew, each time after more writes
    for seq in range(1000, 1000 + FOLD_AFTER_WRITES):
        logger.append(entry("j5", seq=seq))
    assert logger.fold_due() == 0  # 32 writes are not a quarter of a long log
    for seq in range(1000 + FOLD_AFTER_WRITES, 1000 + folded // FOLD_GROWTH + 1):
        logger.append(entry("j5", seq=seq))
    assert logger.fold_due() == 1
    assert steps_of(logger.read("j5")) == list(range(1000 + folded // FOLD_GROWTH + 1))


def test_another_process_continues_the_log_and_its_journal(tmp_path: Path) -> None:
    first = WorkflowLogger(tmp_path)
    first.append(entry("j3", seq=0))
    first.append(entry("j3", seq=1))  # journaled by a worker that then dies
    WorkflowLogger(tmp_path).append(entry("j3", seq=2))  # a fresh worker folds first
    assert steps_of(json.loads((tmp_path / "j3.json").read_text())) == [0, 1, 2]


def test_a_torn_journal_line_is_skipped(tmp_path: Path) -> None:
    logger = WorkflowLogger(tmp_path)
    logger.append(entry("j4", seq=0))
    logger.append(entry("j4", seq=1))
    with (tmp_path / ".j4.journal").open("a") as journal:
        journal.write('{"execution_id": "j4", "run_id": ')  # a crash mid-append
    assert steps_of(logger.read("j4")) == [0, 1]
    logger.write(entry("j4", seq=2))
    assert steps_of(json.loads((tmp_path / "j4.json").read_text())) == [0, 1, 2]


def test_a_final_document_is_not_rolled_back_by_a_leftover_journal(tmp_path: Path) -> None:
    logger = WorkflowLogger(tmp_path)
    logger.append(entry("j5", seq=0))
    logger.write(entry("j5", status="completed"))
    # A journal line written after the final write (a zombie attempt of a step).
    JournalAppender().append(str(tmp_path / ".j5.journal"), entry("j5", seq=0))
    document = logger.read("j5")
    assert document is not None and document["status"] == "completed"


def test_appends_from_many_threads_lose_nothing(tmp_path: Path) -> None:
    """Appends and folds of one journal from two loggers (two workers) interleave safely."""
    loggers = [WorkflowLogger(tmp_path), WorkflowLogger(tmp_path)]
    loggers[0].append(entry("j6", seq=0))

    def work(index: int) -> None:
        logger = loggers[index % 2]
        for seq in range(1 + index * 50, 1 + (index + 1) * 50):
            if seq % 17 == 0:
                logger.write(entry("j6", seq=seq))
            else:
                logger.append(entry("j6", seq=seq))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert steps_of(loggers[0].read("j6")) == list(range(201))
    loggers[1].write(entry("j6", status="completed"))
    assert steps_of(json.loads((tmp_path / "j6.json").read_text())) == list(range(201))


def test_journal_files_stay_open_between_appends_a_few_at_a_time(tmp_path: Path) -> None:
    """Appends reuse an open file per log (at most ``keep``); a fold in between (here, or
    by another worker) leaves it for a fresh journal; a finished log's file is closed."""
    logger, other = WorkflowLogger(tmp_path), WorkflowLogger(tmp_path)
    logger.journal = FileJournal(FileStorage(tmp_path), keep=3)
    before = _open_files(tmp_path)
    for name in ("k1", "k2", "k3", "k4", "k5"):
        other.write(entry(name, seq=0))  # another worker created the document
        logger.append(entry(name, seq=1))
        logger.append(entry(name, seq=2))
    assert _open_files(tmp_path) - before == {f".{n}.journal" for n in ("k3", "k4", "k5")}
    other.write(entry("k5", seq=3))  # another worker folds while the file is open here
    logger.append(entry("k5", seq=4))
    assert steps_of(logger.read("k5")) == [0, 1, 2, 3, 4]
    logger.write(entry("k5", seq=5, status="completed"))
    assert _open_files(tmp_path) - before == {".k3.journal", ".k4.journal"}
    assert steps_of(json.loads((tmp_path / "k5.json").read_text())) == [0, 1, 2, 3, 4, 5]
    assert not (tmp_path / ".k5.journal").exists()


def test_a_journal_appender_shared_by_threads_keeps_one_file_per_journal(tmp_path: Path) -> None:
    appender, path = JournalAppender(), str(tmp_path / ".j8.journal")

    def work(first: int) -> None:
        for seq in range(first, first + 50):
            appender.append(path, entry("j8", seq=seq))

    threads = [threading.Thread(target=work, args=(i * 50,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(steps_of(WorkflowLogger(tmp_path).read("j8"))) == list(range(200))
    assert _open_files(tmp_path) == {".j8.journal"}
    appender.close(path)
    assert _open_files(tmp_path) == set()


def test_an_append_that_cannot_be_made_is_logged_and_holds_no_file(tmp_path: Path) -> None:
    logger = WorkflowLogger(tmp_path)
    logger.append(entry("j9", seq=0))  # the document exists: later appends go to the journal
    (tmp_path / ".j9.journal").mkdir()  # a journal path that cannot be opened for writing
    assert logger.append_quietly(entry("j9", seq=1)) is False
    assert _open_files(tmp_path) == set()


def _open_files(directory: Path) -> set[str]:
    """The names of this process's open files in ``directory``."""
    names = set()
    for link in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = Path(os.readlink(link))
            if target.parent == directory:
                names.add(target.name)
    return names


def test_rotation_folds_a_journal_left_behind_and_clears_crashed_temporary_files(
    tmp_path: Path,
) -> None:
    policy = RotationPolicy(
        compress_after_seconds=10**9, max_age_seconds=10**9, max_files=100, max_total_bytes=10**9
    )
    logger = WorkflowLogger(tmp_path, policy)
    logger.append(entry("j7", seq=0))
    logger.append(entry("j7", seq=1))
    journal = tmp_path / ".j7.journal"
    _age(journal, 2 * 3600)
    leftover = tmp_path / ".j7.12345.tmp"
    leftover.write_text("{")
    _age(leftover, 2 * 3600)
    logger.rotate()
    assert not journal.exists() and not leftover.exists()
    assert steps_of(json.loads((tmp_path / "j7.json").read_text())) == [0, 1]
