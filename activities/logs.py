"""WorkflowLogger: the execution log files (SPEC §4), their writes and their rotation.

One JSON file per execution, named by the server-generated execution id. The workflow's own
writes (a local activity: at waits, failures and the end) merge one :class:`LogWrite` into the
file: header fields replaced, step records upserted by sequence number, the result written to
a temporary file and renamed over the old one, so a reader never sees half a file and a retried
write changes nothing. Activity steps carry the records not yet written and add them to the
log's journal while they make their call (activities/log_files.py): the document is rebuilt
from the journal at least once a second, and readers merge it in.

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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.log_files import (
    LogText,
    append_to_journal,
    journal_path,
    merge_journal,
    read_journal,
    taken_journal,
)
from workflows.errors import FailureType
from workflows.runtime.files import atomic_write
from workflows.runtime.settings import Settings
from workflows.shared import WRITE_EXECUTION_LOG, ExecutionError, LogWrite

logger = logging.getLogger(__name__)

# While steps flow, the document is rewritten from its journal at least this often.
JOURNAL_FOLD_SECONDS = 1.0
# Rotation folds a journal, and removes a crashed write's temporary file, left this long.
STALE_SECONDS = 3600.0

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


@dataclass
class CarriedWrite:
    """The write of the log records an activity step carried (see WorkflowLogger.carried)."""

    task: asyncio.Future[bool] | None

    async def written(self) -> bool:
        return await self.task if self.task is not None else False


class InvalidExecutionId(ValueError):
    """An execution id that cannot name a log file."""


class WorkflowLogger:
    """Writes, reads and rotates execution logs in one directory (the plan's WorkflowLogger)."""

    def __init__(self, log_dir: Path, policy: RotationPolicy | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.policy = policy
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # Running logs as last written, so a step write neither re-reads nor re-renders them.
        self._cache: dict[str, LogText] = {}

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

    def write(self, entry: LogWrite) -> None:
        """Merge ``entry`` and the journal into the document: header replaced, records upserted."""
        path = self.path_for(entry.execution_id)
        with self._lock(entry.execution_id):
            self._fold(entry, path)

    def append(self, entry: LogWrite) -> None:
        """An activity step's carried write: a journal line, or a rewrite when one is due.

        The document is rewritten when this process has none cached for the execution (a
        first write, or another worker's run), and once ``JOURNAL_FOLD_SECONDS`` have passed.
        """
        path = self.path_for(entry.execution_id)
        with self._lock(entry.execution_id):
            text = self._cache.get(entry.execution_id)
            if text is None or time.monotonic() - text.folded_at >= JOURNAL_FOLD_SECONDS:
                self._fold(entry, path)
            else:
                append_to_journal(journal_path(path), entry)

    def _fold(self, entry: LogWrite, path: Path) -> None:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        with taken_journal(journal_path(path)) as journaled:
            # Read inside the journal's lock: another worker's fold cannot slip in between.
            text = self._load_for_update(entry.execution_id, path)
            for earlier in journaled:
                for record in earlier.records():
                    text.upsert(record)
            for record in entry.records():
                text.upsert(record)
            header = text.header_for(entry)
            final = header["status"] != "running"
            # fsync only the final write (~2 ms a step saved): a killed process loses nothing,
            # and a machine crash can at worst roll a running log back a few steps.
            text.stamp = self._atomic_write(path, text.render(header), durable=final)
        text.folded_at = time.monotonic()
        if final:
            self._cache.pop(entry.execution_id, None)
            with self._locks_guard:
                self._locks.pop(entry.execution_id, None)
        else:
            self._cache[entry.execution_id] = text

    async def write_quietly(self, entry: LogWrite) -> bool:
        """An activity step's carried write; False (and an error logged) if the log is unusable.

        It runs on the event loop, once the step's own call has gone out: a journal line takes
        microseconds, a thread hop would cost more than the write (and wait for the GIL).
        """
        try:
            await asyncio.sleep(0)  # let the step's call go out first
            self.append(entry)
        except (OSError, InvalidExecutionId) as err:
            logger.error(
                "cannot write execution log for %s in %s: %s (its records stay with the run, "
                "which cannot end before they are written)",
                entry.execution_id,
                self.log_dir,
                err,
            )
            return False
        return True

    def _lock(self, execution_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(execution_id, threading.Lock())

    def _load_for_update(self, execution_id: str, path: Path) -> LogText:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return LogText()
        cached = self._cache.get(execution_id)
        if cached and cached.stamp == (stat.st_mtime_ns, stat.st_size):
            return cached
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            # A damaged file is kept aside, not overwritten silently.
            path.rename(path.with_suffix(f".corrupt-{int(time.time())}"))
            logger.error("execution log %s was unreadable; moved aside", path)
            return LogText()
        return LogText.parse(document)

    def _atomic_write(self, path: Path, data: str, durable: bool = True) -> tuple[int, int]:
        """Write ``data`` over ``path`` atomically; returns the new file's (mtime_ns, size).

        The temporary name is fixed per process and execution (writes of one execution are
        serialised by its lock), which spares the random-name retries on every write.
        """
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
        stat = atomic_write(path, data, durable=durable, tmp=tmp)
        return stat.st_mtime_ns, stat.st_size

    def finalise(
        self, execution_id: str, status: str, end_time: datetime, error: ExecutionError
    ) -> bool:
        """Close a log whose run Temporal ended without our code (terminate, run timeout).

        Returns False when there is nothing to do: no log, or one already closed.
        """
        current = self.read(execution_id)
        if current is None or current.get("status") != "running":
            return False
        entry = LogWrite(
            execution_id=execution_id,
            run_id=current["run_id"],
            workflow_id=current["workflow_id"],
            workflow_name=current.get("workflow_name"),
            workflow_version=current.get("workflow_version"),
            status=status,  # type: ignore[arg-type]
            start_time=current["start_time"],
            end_time=end_time,
            error=error,
        )
        self.write(entry)
        return True

    # -- reading ----------------------------------------------------------------------------

    def read(self, execution_id: str) -> dict[str, Any] | None:
        """The log as it stands: the document with any journal writes merged in."""
        path = self.path_for(execution_id)
        # The journal first: a fold between the two reads is then already in the document.
        journaled = read_journal(journal_path(path))
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            document = None
        if document is None:
            try:
                with gzip.open(path.with_suffix(".json.gz"), "rt", encoding="utf-8") as handle:
                    return dict(json.load(handle))  # finished logs have no journal
            except FileNotFoundError:
                pass
        if document is None and not journaled:
            return None
        return merge_journal(document, journaled)

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
            if path.name.startswith("."):
                self._tidy(path, now)
                continue
            if not path.name.endswith((".json", ".json.gz")):
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

    def _tidy(self, path: Path, now: float) -> None:
        """A journal left unfolded an hour is folded; a temporary file left by a crash goes."""
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            return
        if age < STALE_SECONDS:
            return
        if path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)
        elif path.name.endswith(".journal"):
            execution_id = path.name[1 : -len(".journal")]
            document = self.log_dir / f"{execution_id}.json"
            with self._lock(execution_id):
                if not document.exists():
                    path.unlink(missing_ok=True)  # its log was deleted
                    return
                with taken_journal(path) as journaled:
                    current = json.loads(document.read_text(encoding="utf-8"))
                    merged = merge_journal(current, journaled)
                    self._atomic_write(document, LogText.parse(merged).render(merged), durable=True)
                self._cache.pop(execution_id, None)

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


@contextlib.asynccontextmanager
async def carried_log(
    logs: WorkflowLogger | None, entry: LogWrite | None
) -> AsyncIterator[CarriedWrite]:
    """Write the log records an activity step carries while the step makes its call.

    The write runs in a thread beside the call; ``await carried.written()`` says whether it
    succeeded. A failed write is only logged: the records stay with the workflow, which hands
    them to the next step or writes them itself, so nothing is lost.
    """
    task = None
    if logs is not None and entry is not None:
        task = asyncio.ensure_future(logs.write_quietly(entry))
    try:
        yield CarriedWrite(task)
    finally:
        if task is not None and not task.done():
            await asyncio.shield(task)  # never leave a write half-way behind the step
