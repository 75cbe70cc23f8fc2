"""The storage interface (activities/runtime/storage): both backends keep the same promises,
the execution logs and the large values keep theirs on S3, and bad storage configuration stops
start-up naming the variable. S3 is moto's server on loopback (tests/moto_s3.py)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from activities.log_rotation import RotationPolicy
from activities.logs import FOLD_EVERY_SECONDS, WorkflowLogger
from activities.runtime.payload_store import (
    REFRESH_SECONDS,
    TRUSTED_SECONDS,
    PayloadStore,
    PayloadStoreError,
    retention_seconds,
)
from activities.runtime.settings import load_settings
from activities.runtime.storage import (
    FileStorage,
    PreconditionFailed,
    Storage,
    check_storage,
    open_stores,
)
from activities.runtime.storage.s3 import S3Storage, make_client
from tests.moto_s3 import bucket_keys, new_bucket, s3_endpoint_fixture  # noqa: F401 (a fixture)
from workflows.errors import ConfigurationError
from workflows.messages import LogWrite, StepRecord

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return FileStorage(tmp_path / "area")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Storage(make_client(endpoint, None), new_bucket(endpoint), "some/prefix/")


@pytest.fixture
def s3_storage(s3_endpoint: str) -> Iterator[S3Storage]:
    yield S3Storage(make_client(s3_endpoint, None), new_bucket(s3_endpoint), "p/")


# -- the protocol, on both backends ------------------------------------------------------------


def test_put_get_head_list_delete(storage: Storage) -> None:
    assert storage.get("a/one") is None and storage.head("a/one") is None
    written = storage.put("a/one", b"first")
    blob = storage.get("a/one")
    assert blob is not None and blob.data == b"first"
    assert blob.info.token == written.token and blob.info.size == 5
    assert abs(blob.info.modified - time.time()) < 5
    storage.put("a/two", b"22")
    storage.put("b/three", b"333")
    listed = {info.key: info.size for info in storage.list()}
    assert listed == {"a/one": 5, "a/two": 2, "b/three": 3}
    assert sorted(info.key for info in storage.list("a/")) == ["a/one", "a/two"]
    assert [info.key for info in storage.list("b/th")] == ["b/three"]
    storage.delete("a/one", "b/three", "never/was")
    assert sorted(info.key for info in storage.list()) == ["a/two"]


def test_conditional_puts(storage: Storage) -> None:
    first = storage.put("doc", b"v1", if_absent=True)
    with pytest.raises(PreconditionFailed):
        storage.put("doc", b"again", if_absent=True)  # already there
    second = storage.put("doc", b"v2", if_match=first.token)
    with pytest.raises(PreconditionFailed):
        storage.put("doc", b"stale", if_match=first.token)  # changed since v1 was read
    blob = storage.get("doc")
    assert blob is not None and blob.data == b"v2" and blob.info.token == second.token


def test_compare_and_swap_from_many_threads_loses_no_update(storage: Storage) -> None:
    """Four writers add to one counter by read, change, conditional put: none is lost."""
    storage.put("counter", b"0")

    def add(times: int) -> None:
        for _ in range(times):
            while True:
                blob = storage.get("counter")
                assert blob is not None
                try:
                    storage.put("counter", b"%d" % (int(blob.data) + 1), if_match=blob.info.token)
                    break
                except PreconditionFailed:
                    continue

    threads = [threading.Thread(target=add, args=(15,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    blob = storage.get("counter")
    assert blob is not None and int(blob.data) == 60


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "a/../b", "", "a b", "a\\b"])
def test_keys_cannot_leave_the_root(storage: Storage, bad: str) -> None:
    with pytest.raises(ValueError):
        storage.put(bad, b"x")


# -- execution logs on S3: the file backend's behaviour (tests/test_logs.py), without append --


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


def document(storage: Storage, execution_id: str) -> dict[str, Any]:
    blob = storage.get(f"{execution_id}.json")
    assert blob is not None
    return dict(json.loads(blob.data))


def seqs(log: dict[str, Any] | None) -> list[int]:
    assert log is not None
    return [s["seq"] for s in log["steps"]]


def test_s3_log_writes_merge_and_retries_change_nothing(s3_storage: S3Storage) -> None:
    logger = WorkflowLogger(s3_storage)
    logger.write(entry("e1"))
    logger.write(entry("e1", seq=0))
    logger.write(entry("e1", seq=1))
    once = document(s3_storage, "e1")
    logger.write(entry("e1", seq=1))  # an activity retry of the same write
    assert document(s3_storage, "e1") == once
    logger.write(entry("e1", status="completed"))
    log = logger.read("e1")
    assert log is not None and seqs(log) == [0, 1] and log["status"] == "completed"
    assert [i.key for i in s3_storage.list()] == ["e1.json"]  # nothing pending is left


def test_s3_carried_writes_wait_as_small_objects_and_readers_merge_them(
    s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("activities.logs.time.monotonic", lambda: clock[0])
    logger = WorkflowLogger(s3_storage)
    logger.append(entry("j1", seq=0))  # the first write creates the document
    logger.append(entry("j1", seq=1))
    logger.append(entry("j1", seq=2))
    pending = [i.key for i in s3_storage.list(".pending/j1/")]
    assert len(pending) == 2 and seqs(document(s3_storage, "j1")) == [0]
    assert seqs(logger.read("j1")) == [0, 1, 2]  # what the API shows
    assert seqs(WorkflowLogger(s3_storage).read("j1")) == [0, 1, 2]  # another process too
    logger.append(entry("j1", seq=3))
    assert logger.fold_due(older_than=FOLD_EVERY_SECONDS) == 0  # not due yet
    clock[0] += FOLD_EVERY_SECONDS  # the periodic fold takes the pending writes in one put
    assert logger.fold_due(older_than=FOLD_EVERY_SECONDS) == 1
    assert seqs(document(s3_storage, "j1")) == [0, 1, 2, 3]
    assert list(s3_storage.list(".pending/")) == []


def test_s3_a_dead_workers_pending_writes_reach_the_final_document(s3_storage: S3Storage) -> None:
    dead = WorkflowLogger(s3_storage)
    dead.append(entry("j2", seq=0))
    dead.append(entry("j2", seq=1))  # pending, and its writer is gone
    successor = WorkflowLogger(s3_storage)
    successor.append(entry("j2", seq=2))  # folds what it knows; the dead one's stays pending
    assert seqs(successor.read("j2")) == [0, 1, 2]
    successor.write(entry("j2", status="completed"))  # the workflow's own write takes them all
    assert seqs(document(s3_storage, "j2")) == [0, 1, 2]
    assert list(s3_storage.list(".pending/")) == []


def test_s3_two_writers_of_one_log_lose_nothing(s3_storage: S3Storage) -> None:
    """Appends and folds of one log from two loggers (two workers) interleave safely: each
    document write is conditional on the version its writer read."""
    loggers = [WorkflowLogger(s3_storage), WorkflowLogger(s3_storage)]
    loggers[0].append(entry("j3", seq=0))

    def work(index: int) -> None:
        logger = loggers[index % 2]
        for seq in range(1 + index * 15, 1 + (index + 1) * 15):
            if seq % 7 == 0:
                logger.write(entry("j3", seq=seq))
            else:
                logger.append(entry("j3", seq=seq))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seqs(loggers[0].read("j3")) == list(range(61))
    loggers[1].write(entry("j3", status="completed"))
    assert seqs(document(s3_storage, "j3")) == list(range(61))


def test_s3_a_final_document_is_not_rolled_back_by_a_late_write(s3_storage: S3Storage) -> None:
    logger = WorkflowLogger(s3_storage)
    logger.append(entry("j4", seq=0))
    logger.write(entry("j4", status="completed"))
    WorkflowLogger(s3_storage).write(entry("j4", seq=0))  # a zombie attempt of a step
    log = logger.read("j4")
    assert log is not None and log["status"] == "completed"


def test_s3_rotation_compresses_then_deletes_and_never_touches_running_logs(
    s3_storage: S3Storage,
) -> None:
    """S3 cannot back-date an object: the logs age by a clock moved forward instead."""
    policy = RotationPolicy(
        compress_after_seconds=60, max_age_seconds=86400, max_files=3, max_total_bytes=10**9
    )
    logger = WorkflowLogger(s3_storage, policy)
    for index in range(5):
        logger.write(entry(f"done{index}", status="completed"))
    logger.write(entry("live"))
    later = time.time() + 3600
    report = logger.rotate(now=later)
    names = sorted(i.key for i in s3_storage.list())
    assert report.compressed == 5
    assert "live.json" in names and len(names) == 3  # the oldest compressed logs went first
    assert all(n.endswith(".json.gz") for n in names if n != "live.json")
    kept = names[0].removesuffix(".json.gz")
    blob = s3_storage.get(names[0])
    assert blob is not None and logger.read(kept) == json.loads(gzip.decompress(blob.data))
    # Past the age limit every finished log goes; the running one stays.
    logger.rotate(now=time.time() + 2 * 86400 + 3600)
    assert [i.key for i in s3_storage.list()] == ["live.json"]


def test_s3_rotation_folds_pending_writes_left_behind(s3_storage: S3Storage) -> None:
    policy = RotationPolicy(
        compress_after_seconds=10**9, max_age_seconds=10**9, max_files=100, max_total_bytes=10**9
    )
    logger = WorkflowLogger(s3_storage, policy)
    logger.append(entry("j5", seq=0))
    logger.append(entry("j5", seq=1))  # pending, its writer then dies
    WorkflowLogger(s3_storage, policy).rotate(now=time.time() + 2 * 3600)
    assert list(s3_storage.list(".pending/")) == []
    assert seqs(document(s3_storage, "j5")) == [0, 1]


# -- large values ------------------------------------------------------------------------------


def test_payload_store_round_trip_damage_and_absence(storage: Storage) -> None:
    store = PayloadStore(storage)
    data = os.urandom(1000)
    digest = hashlib.sha256(data).hexdigest()
    store.save(digest, data)
    assert store.load(digest) == data
    assert [i.key for i in storage.list()] == [f"{digest[:2]}/{digest}"]
    storage.put(f"{digest[:2]}/{digest}", b"tampered")
    with pytest.raises(PayloadStoreError, match="damaged"):
        store.load(digest)
    with pytest.raises(PayloadStoreError, match="missing"):
        store.load("0" * 64)
    with pytest.raises(PayloadStoreError, match="not a payload reference"):
        store.load("../../etc/passwd")


class CountingPuts:
    """A storage that counts its puts (everything else passes through)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **options: Any) -> Any:
        self.puts += 1
        return self.inner.put(key, data, **options)


def test_retention_deletes_values_not_referenced_within_the_limit(storage: Storage) -> None:
    """A value is written once; encoded again (re-referenced) it is written again only once it
    is older than REFRESH_SECONDS, which restarts its age; the sweep deletes what is older than
    the limit and keeps the rest. (S3 cannot back-date an object: the sweep's clock moves.)"""
    counting = CountingPuts(storage)
    store = PayloadStore(counting)  # type: ignore[arg-type]
    value = b"a large value"
    digest = hashlib.sha256(value).hexdigest()
    store.save(digest, value)
    written = storage.head(f"{digest[:2]}/{digest}")
    assert written is not None and counting.puts == 1
    store.save(digest, value, now=written.modified + REFRESH_SECONDS / 2)
    assert counting.puts == 1  # referenced again soon: nothing to write
    store.save(digest, value, now=written.modified + REFRESH_SECONDS + 1)
    assert counting.puts == 2  # referenced again a day later: written again, age restarts
    keep = 10 * 86400.0
    assert store.sweep(keep, now=time.time() + keep - 60).deleted == 0
    report = store.sweep(keep, now=time.time() + keep + 60)
    assert (report.deleted, report.kept) == (1, 0)
    assert list(storage.list()) == []


def test_the_retention_limit_covers_the_longest_run_and_its_log() -> None:
    settings = load_settings(execution_timeout_seconds=7 * 86400, log_max_age_days=3)
    day_and_hour = REFRESH_SECONDS + TRUSTED_SECONDS
    assert retention_seconds(settings) == 7 * 86400 + 3 * 86400 + day_and_hour


# -- configuration -----------------------------------------------------------------------------


def test_file_urls_set_the_directories_the_variables_do_not(tmp_path: Path) -> None:
    default = load_settings()
    assert default.workflow_log_dir == Path("storage/workflow_logs")
    assert default.payload_store_dir == Path("storage/payloads")
    moved = load_settings(storage_url=f"file://{tmp_path}", payload_store_dir=tmp_path / "big")
    assert moved.workflow_log_dir == tmp_path / "workflow_logs"
    assert moved.payload_store_dir == tmp_path / "big"
    stores = open_stores(moved)
    assert isinstance(stores.logs, FileStorage) and stores.logs.root == tmp_path / "workflow_logs"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"storage_url": "ftp://host/x"}, "STORAGE_URL: Value error, unknown storage"),
        ({"storage_url": "storage"}, "STORAGE_URL: Value error, unknown storage"),
        ({"storage_url": "s3://"}, "STORAGE_URL: Value error, s3:// needs a bucket"),
        ({"storage_url": "s3://Not_A_Bucket/x"}, "STORAGE_URL: Value error, 'Not_A_Bucket'"),
        ({"storage_url": "s3://bucket/../up"}, "STORAGE_URL: Value error, prefix"),
        ({"s3_endpoint_url": "minio:9000"}, "S3_ENDPOINT_URL: Value error, must start with"),
    ],
)
def test_bad_storage_settings_name_the_variable(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        load_settings(**variables)


def test_a_missing_bucket_or_an_unreachable_endpoint_stops_start_up(s3_endpoint: str) -> None:
    missing = load_settings(storage_url="s3://no-such-bucket/x", s3_endpoint_url=s3_endpoint)
    with pytest.raises(ConfigurationError, match="STORAGE_URL: bucket 'no-such-bucket' does not"):
        check_storage(missing)
    from api.cli.devstack import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = load_settings(storage_url="s3://some-bucket/x", s3_endpoint_url=nowhere)
    with pytest.raises(ConfigurationError, match=f"S3_ENDPOINT_URL: cannot reach {nowhere}"):
        check_storage(unreachable)
    from api.server.main import create_app

    with pytest.raises(ConfigurationError, match="STORAGE_URL: bucket 'no-such-bucket'"):
        create_app(missing)


def test_the_worker_refuses_to_start_on_a_missing_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "S3_"))}
    env |= {
        "STORAGE_URL": f"s3://missing-{uuid.uuid4().hex[:8]}/wfe",
        "S3_ENDPOINT_URL": s3_endpoint,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",  # never reached: storage is checked first
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "worker: STORAGE_URL: bucket 'missing-" in done.stderr, done.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran
