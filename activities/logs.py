"""WorkflowLogger: the execution log files (SPEC §4), their writes and their rotation.

One JSON file per execution, named by the server-generated execution id. Each write merges
one :class:`LogWrite` into the file: header fields are replaced, the step record is upserted
by its sequence number. The merge is then written to a temporary file and renamed over the
old one, so a reader never sees half a file and a retried write changes nothing.

Rotation: finished logs older than ``log_compress_after_seconds`` are gzipped; logs older than
``log_max_age_days`` are deleted; then the oldest are deleted until the count and total size
are within ``log_max_files`` and ``log_max_total_mb``. Running logs are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.errors import FailureType
from workflows.settings import Settings
from workflows.shared import WRITE_EXECUTION_LOG, LogWrite

logger = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")  # ":" appears in scheduled run ids


@dataclass(frozen=True)
class RotationPolicy:
    compress_after_seconds: float
    max_age_seconds: float
    max_files: int
    max_total_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RotationPolicy:
        return cls(
            compress_after_seconds=settings.log_compress_after_seconds,
            max_age_seconds=settings.log_max_age_days * 86400,
            max_files=settings.log_max_files,
            max_total_bytes=int(settings.log_max_total_mb * 1024 * 1024),
        )


@dataclass
class RotationReport:
    compressed: int = 0
    deleted: int = 0
    kept: int = 0


class InvalidExecutionId(ValueError):
    """An execution id that cannot name a log file."""


class WorkflowLogger:
    """Writes, reads and rotates execution logs in one directory (the plan's WorkflowLogger)."""

    def __init__(self, log_dir: Path, policy: RotationPolicy | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.policy = policy
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # (mtime_ns, size) -> parsed document, so a step write does not re-read the file.
        self._cache: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}

    # -- paths ------------------------------------------------------------------------------

    def path_for(self, execution_id: str) -> Path:
        if not _SAFE_ID.match(execution_id) or execution_id.startswith("."):
            raise InvalidExecutionId(f"not a valid execution id: {execution_id!r}")
        return self.log_dir / f"{execution_id}.json"

    # -- writing ----------------------------------------------------------------------------

    @activity.defn(name=WRITE_EXECUTION_LOG)
    async def write_execution_log(self, entry: LogWrite) -> None:
        """Activity: merge one entry into the execution's log file."""
        try:
            await asyncio.to_thread(self.write, entry)
        except OSError as err:
            logger.error(
                "cannot write execution log for %s in %s: %s (the run waits and retries)",
                entry.execution_id,
                self.log_dir,
                err,
            )
            raise ApplicationError(
                f"cannot write execution log in {self.log_dir}: {err.strerror or err}",
                type=FailureType.LOG_WRITE,
            ) from err

    def write(self, entry: LogWrite) -> dict[str, Any]:
        path = self.path_for(entry.execution_id)
        with self._lock(entry.execution_id):
            document = self._load_for_update(entry.execution_id, path)
            merged = merge_entry(document, entry)
            # fsync only the final write (~2 ms a step saved): a killed process loses nothing,
            # and a machine crash can at worst roll a running log back a few steps.
            self._atomic_write(path, merged, durable=merged["status"] != "running")
            stat = path.stat()
            self._cache[entry.execution_id] = ((stat.st_mtime_ns, stat.st_size), merged)
            if merged["status"] != "running":
                self._cache.pop(entry.execution_id, None)
                with self._locks_guard:
                    self._locks.pop(entry.execution_id, None)
            return merged

    def _lock(self, execution_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(execution_id, threading.Lock())

    def _load_for_update(self, execution_id: str, path: Path) -> dict[str, Any] | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        cached = self._cache.get(execution_id)
        if cached and cached[0] == (stat.st_mtime_ns, stat.st_size):
            return cached[1]
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            # A damaged file is kept aside, not overwritten silently.
            path.rename(path.with_suffix(f".corrupt-{int(time.time())}"))
            logger.error("execution log %s was unreadable; moved aside", path)
            return None

    def _atomic_write(self, path: Path, document: dict[str, Any], durable: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(document, ensure_ascii=False, indent=2, default=str)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    # -- reading ----------------------------------------------------------------------------

    def read(self, execution_id: str) -> dict[str, Any] | None:
        path = self.path_for(execution_id)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        try:
            with gzip.open(path.with_suffix(".json.gz"), "rt", encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    # -- rotation ---------------------------------------------------------------------------

    def rotate(self, now: float | None = None) -> RotationReport:
        """Apply the rotation policy once; safe to run while logs are being written."""
        report = RotationReport()
        if self.policy is None or not self.log_dir.is_dir():
            return report
        now = time.time() if now is None else now
        policy = self.policy
        entries: list[tuple[float, int, Path]] = []
        for path in self.log_dir.iterdir():
            if not path.name.endswith((".json", ".json.gz")) or path.name.startswith("."):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            age = now - stat.st_mtime
            if (
                path.name.endswith(".json")
                and age >= policy.compress_after_seconds
                and self._is_finished(path)
            ):
                compressed = self._compress(path)
                if compressed is not None:
                    report.compressed += 1
                    path = compressed
                    stat = path.stat()
            entries.append((stat.st_mtime, stat.st_size, path))

        entries.sort()  # oldest first
        keep: list[tuple[float, int, Path]] = []
        for mtime, size, path in entries:
            if now - mtime > policy.max_age_seconds and self._deletable(path):
                path.unlink(missing_ok=True)
                report.deleted += 1
            else:
                keep.append((mtime, size, path))
        total = sum(size for _, size, _ in keep)
        index = 0
        while (len(keep) > policy.max_files or total > policy.max_total_bytes) and index < len(
            keep
        ):
            mtime, size, path = keep[index]
            if self._deletable(path):
                path.unlink(missing_ok=True)
                report.deleted += 1
                total -= size
                keep.pop(index)
            else:
                index += 1
        report.kept = len(keep)
        return report

    def _is_finished(self, path: Path) -> bool:
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("status") != "running"
        except (OSError, ValueError):
            return False

    def _deletable(self, path: Path) -> bool:
        return path.name.endswith(".json.gz") or self._is_finished(path)

    def _compress(self, path: Path) -> Path | None:
        target = path.with_suffix(".json.gz")
        execution_id = path.name.removesuffix(".json")
        with self._lock(execution_id):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                return None
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".gz.tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
            os.utime(target, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
            path.unlink()
        return target


def merge_entry(document: dict[str, Any] | None, entry: LogWrite) -> dict[str, Any]:
    """Merge a LogWrite into a log document (pure; idempotent for the same entry)."""
    data = entry.model_dump(mode="json")
    # The SPEC's keys first, in its order; extra keys after.
    merged: dict[str, Any] = {
        "execution_id": data["execution_id"],
        "workflow_id": data["workflow_id"],
        "start_time": data["start_time"],
        "end_time": data["end_time"],
        "status": data["status"],
        "steps": [],
        "run_id": data["run_id"],
        "workflow_name": data["workflow_name"],
        "workflow_version": data["workflow_version"],
        "error": data["error"],
    }
    steps: list[dict[str, Any]] = list(document.get("steps", [])) if document else []
    for step in data["steps"] if data["step"] is None else [data["step"], *data["steps"]]:
        _upsert(steps, step)
    merged["steps"] = steps
    return merged


def _upsert(steps: list[dict[str, Any]], step: dict[str, Any]) -> None:
    record = {
        "step_id": step["step_id"],
        "name": step["name"],
        "start_time": step["start_time"],
        "end_time": step["end_time"],
        "status": step["status"],
        "output_vars": step["output_vars"],
        "error": step["error"],
        "seq": step["seq"],
        "type": step["type"],
    }
    for extra in ("error_type", "attempts", "usage"):
        if step.get(extra) is not None:
            record[extra] = step[extra]
    if not steps or steps[-1].get("seq", -1) < step["seq"]:
        steps.append(record)  # the usual case: the next step in order
        return
    position = next((i for i, s in enumerate(steps) if s.get("seq") == step["seq"]), None)
    if position is None:
        steps.append(record)
        steps.sort(key=lambda s: s.get("seq", 0))
    else:
        steps[position] = record
