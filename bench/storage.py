"""What the storage backends cost a step: the execution log's writes and reads, large values.

    python -m bench.storage [--steps 300]

Measured in this process against each backend: ``file`` (a temporary directory on this
machine's disk) and ``s3`` (moto's S3 server in a subprocess on loopback, bench/s3.py; real S3
adds its network round trip, typically 10-30 ms a request inside a region). Per backend:

- carried write, fast steps: ``WorkflowLogger.append`` for one step record, steps back to back
  (the journal takes most writes; the document is rebuilt once a second);
- carried write, slow steps: the same when every write is a fold (steps a second or more
  apart, the usual case for steps that call something);
- the workflow's own write (``write``: a full fold, at waits, failures and the end);
- a reader's look at a running log (``read``: what ``GET /api/executions/{id}/log`` does);
- a 3 MB large value stored and read back (``PayloadStore.save`` / ``load``).

Requests made (S3: PUT/GET/LIST/DELETE) are counted per operation, so the cost in requests is
printed beside the time. Results are printed and written to bench/results/storage-*.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from activities.log_journals import ObjectJournal, journal_for
from activities.logs import WorkflowLogger
from activities.runtime.payload_store import PayloadStore
from activities.runtime.storage import Blob, FileStorage, ObjectInfo, Storage
from activities.runtime.storage.s3 import S3Storage, make_client
from bench.s3 import moto_subprocess, new_bucket, use_dummy_credentials
from workflows.messages import LogWrite, StepRecord

RESULTS_DIR = Path(__file__).parent / "results"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Counting:
    """A storage that counts its calls by operation (everything passes through)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def executor(self) -> Any:
        return self.inner.executor

    def get(self, key: str) -> Blob | None:
        self.calls["get"] += 1
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo | None:
        self.calls["head"] += 1
        return self.inner.head(key)

    def put(self, key: str, data: bytes, **options: Any) -> ObjectInfo:
        self.calls["put"] += 1
        return self.inner.put(key, data, **options)

    def delete(self, *keys: str) -> None:
        self.calls["delete"] += 1
        self.inner.delete(*keys)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.calls["list"] += 1
        return self.inner.list(prefix)


def step_write(execution_id: str, seq: int, status: str = "running") -> LogWrite:
    record = StepRecord(
        seq=seq,
        step_id=f"step{seq}",
        name=f"call {seq}",
        type="http",
        start_time=NOW,
        end_time=NOW,
        status="success",
        output_vars={"reply": {"status": 200, "json": {"ok": True, "n": seq, "text": "x" * 200}}},
        run_id="run",
    )
    return LogWrite(
        execution_id=execution_id,
        run_id="run",
        workflow_id="bench",
        status=status,  # type: ignore[arg-type]
        start_time=NOW,
        end_time=None if status == "running" else NOW,
        steps=[record],
    )


def timed(calls: int, action: Callable[[int], Any]) -> list[float]:
    samples = []
    for index in range(calls):
        started = time.perf_counter()
        action(index)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def figures(samples: list[float], calls: Counter[str], count: int) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "mean_ms": statistics.fmean(samples),
        "p50_ms": ordered[len(ordered) // 2],
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "requests_per_call": {op: n / count for op, n in sorted(calls.items())},
    }


def measure(storage: Storage, steps: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    counting = Counting(storage)
    logger = WorkflowLogger(counting)  # type: ignore[arg-type]
    # The journal the backend itself gets (the file journal needs the FileStorage; on S3 the
    # pending objects go through the counter).
    if isinstance(storage, FileStorage):
        logger.journal = journal_for(storage)
    else:
        logger.journal = ObjectJournal(counting)  # type: ignore[arg-type]

    # Fast steps: back to back, the document folded once a second.
    logger.write(step_write("fast", 0))
    counting.calls.clear()
    samples = timed(steps, lambda i: logger.append(step_write("fast", i + 1)))
    results["carried write, fast steps"] = figures(samples, counting.calls, steps)
    if isinstance(storage, FileStorage):
        journal = storage.path_of(".fast.journal")
        pending = len(journal.read_bytes().splitlines()) if journal.exists() else 0
    else:
        pending = sum(1 for _ in storage.list(".pending/fast/"))
    counting.calls.clear()
    samples = timed(20, lambda i: logger.read("fast"))
    label = f"read a running log ({steps} steps, {pending} not folded)"
    results[label] = figures(samples, counting.calls, 20)

    # The periodic fold (in a thread of the worker): one rewrite brings a run's journal in.
    logger.write(step_write("slow", 0))
    samples = []
    counting.calls.clear()
    for i in range(steps):
        logger.append(step_write("slow", i + 1))
        started = time.perf_counter()
        logger.fold_due(0.0)
        samples.append((time.perf_counter() - started) * 1000)
    results["periodic fold of one step (in a thread)"] = figures(samples, counting.calls, steps)
    counting.calls.clear()
    samples = timed(50, lambda i: logger.write(step_write("own", i)))
    results["workflow's own write (full fold)"] = figures(samples, counting.calls, 50)

    value = os.urandom(3 * 1024 * 1024)
    digest = hashlib.sha256(value).hexdigest()
    store = PayloadStore(counting)  # type: ignore[arg-type]
    counting.calls.clear()
    samples = timed(1, lambda i: store.save(digest, value))
    results["3 MB value: store"] = figures(samples, counting.calls, 1)
    counting.calls.clear()
    samples = timed(5, lambda i: store.load(digest))
    results["3 MB value: read"] = figures(samples, counting.calls, 5)
    return results


def print_results(name: str, results: dict[str, Any]) -> None:
    print(f"\n{name}")
    for what, f in results.items():
        requests = ", ".join(f"{op} {n:.2f}" for op, n in f["requests_per_call"].items())
        print(
            f"  {what:<48} mean {f['mean_ms']:7.3f} ms  p50 {f['p50_ms']:7.3f}  "
            f"p99 {f['p99_ms']:7.3f}   calls/op: {requests}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        report["file"] = measure(FileStorage(Path(tmp) / "logs"), args.steps)
        print_results(f"file ({tmp}, {args.steps} steps)", report["file"])
        with moto_subprocess() as endpoint:
            use_dummy_credentials()
            storage = S3Storage(make_client(endpoint, None), new_bucket(endpoint), "bench/")
            report["s3"] = measure(storage, args.steps)
            print_results(f"s3 (moto on loopback, {args.steps} steps)", report["s3"])
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"storage-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
