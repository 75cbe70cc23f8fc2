"""WorkflowLogger: the execution logs, their writes and their rotation.

One JSON document per execution, ``<execution_id>.json``, in the logs area of the storage
(STORAGE_URL: a directory, or ``<prefix>/workflow_logs/`` in an S3 bucket; activities/runtime/
storage). The workflow's own writes (a local activity: at waits, failures and the end) merge
one :class:`LogWrite` into the document: header fields replaced, step records upserted by
sequence number, the result put whole (atomically), so a reader never sees half a document and
a retried write changes nothing. Every put is conditional on the version the writer read, so
two processes writing one log (parallel branches on two workers, a crashed worker's successor)
never lose each other's records: the loser reads again and merges again. Activity steps carry
the records not yet written and add them to the log's journal while they make their call
(activities/log_journals.py), which costs an append, not a rewrite: the document is rebuilt from
the journal by the workflow's own writes, and otherwise by a periodic fold in a thread
(``fold_due``, every 32 writes or 30 seconds per run, coalescing however many steps came), off
the worker's event loop. Readers merge the journal in, so a log is as fresh as its journal.

Rotation (compression, deletion by age, count and size) is activities/log_rotation.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import InvalidExecutionId
from activities.log_files import LogText, header_source, merge_journal
from activities.log_journals import journal_for
from activities.log_rotation import (
    COMPRESSED,
    DOCUMENT,
    LogRotation,
    RotationPolicy,
    RotationReport,
)
from activities.runtime.storage import (
    FileStorage,
    PreconditionFailed,
    Storage,
    StorageError,
    off_loop,
)
from workflows.errors import FailureType
from workflows.messages import WRITE_EXECUTION_LOG, ExecutionError, LogWrite

logger = logging.getLogger(__name__)

# While steps flow, the document is rewritten from its journal once its oldest unfolded write
# is this old, or once it holds this many writes (readers merge the journal, so this bounds
# only how much a reader merges, never what it sees). Under load a run's steps come seconds
# apart: a fold every few seconds was a rewrite every other step, the worker's largest cost
# after the steps' own calls.
FOLD_EVERY_SECONDS = 30.0
FOLD_AFTER_WRITES = 32
# ... or, for a long log, once its journal holds a quarter of the log's records in writes: a
# fold rewrites the whole document, and a foreach of 10,000 items folding every 32 writes
# rewrote a growing document some 300 times (its cost grew with the square of its length).
FOLD_GROWTH = 4
# A write whose conditional put loses this many races in a row gives up (and is retried as
# any failed write is): other writers of one log are a handful of workers, not a crowd.
MAX_CONFLICTS = 20

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")  # ":" appears in scheduled run ids


@dataclass
class CarriedWrite:
    """The write of the log records an activity step carried (see ``carried_log``): made
    already (``done``), or on its way in ``task``."""

    task: asyncio.Future[bool] | None = None
    done: bool = False

    async def written(self) -> bool:
        return await self.task if self.task is not None else self.done


class WorkflowLogger:
    """Writes and reads execution logs in one storage area, and runs their rotation.

    ``storage``: a Storage, or a directory (the file backend there).
    """

    def __init__(self, storage: Storage | Path | str, policy: RotationPolicy | None = None) -> None:
        self.storage: Storage = (
            FileStorage(Path(storage)) if isinstance(storage, (str, Path)) else storage
        )
        self.journal = journal_for(self.storage)
        self.policy = policy
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # Running logs as last written, so a step write neither re-reads nor re-renders them.
        self._cache: dict[str, LogText] = {}
        # Executions with journal writes not yet folded -> time.monotonic() of the oldest.
        self._unfolded: dict[str, float] = {}
        self._journaled: dict[str, int] = {}  # how many writes wait in each journal

    @property
    def location(self) -> str:
        return self.storage.location

    # -- names ------------------------------------------------------------------------------

    def key_for(self, execution_id: str) -> str:
        """The key of the execution's log document; InvalidExecutionId if it cannot be one."""
        if not _SAFE_ID.match(execution_id) or execution_id.startswith("."):
            raise InvalidExecutionId(f"not a valid execution id: {execution_id!r}")
        return f"{execution_id}{DOCUMENT}"

    # -- writing ----------------------------------------------------------------------------

    @activity.defn(name=WRITE_EXECUTION_LOG)
    async def write_execution_log(self, entry: LogWrite) -> None:
        """Activity: merge one entry into the execution's log."""
        try:
            await off_loop(self.storage, self.write, entry)
        except OSError as err:  # StorageError (S3) is an OSError too
            logger.error(
                "cannot write execution log for %s in %s: %s (the run waits and retries)",
                entry.execution_id,
                self.location,
                err,
            )
            raise ApplicationError(
                f"cannot write execution log in {self.location}: {err.strerror or err}",
                type=FailureType.LOG_WRITE,
            ) from err

    def write(self, entry: LogWrite) -> None:
        """Merge ``entry`` and every journal write into the document."""
        self.key_for(entry.execution_id)
        with self._lock(entry.execution_id):
            self._fold(entry.execution_id, entry, everything=True)

    def append(self, entry: LogWrite) -> None:
        """An activity step's carried write: a journal append.

        The document is written here only when this process has none cached for the execution
        (a first write, or another worker's run): then the log exists from the first step on.
        """
        execution_id = entry.execution_id
        self.key_for(execution_id)
        with self._lock(execution_id):
            if execution_id not in self._cache:
                self._fold(execution_id, entry, everything=False)
            else:
                self.journal.append(execution_id, entry)
                self._unfolded.setdefault(execution_id, time.monotonic())
                self._journaled[execution_id] = self._journaled.get(execution_id, 0) + 1

    def fold_due(
        self, older_than: float = FOLD_EVERY_SECONDS, writes: int = FOLD_AFTER_WRITES
    ) -> int:
        """Fold the journals whose oldest unfolded write is ``older_than`` seconds old, or
        that hold ``writes`` writes.

        Blocking (call it in a thread). One fold per run, however many steps it journaled; a
        fold that fails is logged and tried again next time (the journal keeps the records).
        Returns how many logs were folded.
        """
        deadline = time.monotonic() - older_than
        due = [
            key
            for key, since in list(self._unfolded.items())
            if since <= deadline or self._journaled.get(key, 0) >= self._fold_after(key, writes)
        ]
        folded = 0
        for execution_id in due:
            with self._lock(execution_id):
                if execution_id not in self._unfolded:
                    continue  # the workflow's own write folded it meanwhile
                try:
                    self._fold(execution_id, None, everything=False)
                except OSError as err:  # StorageError (S3) is an OSError too
                    logger.error(
                        "cannot fold the log journal of %s in %s: %s (tried again later)",
                        execution_id,
                        self.location,
                        err,
                    )
                    continue
                folded += 1
        return folded

    def _fold_after(self, execution_id: str, writes: int) -> int:
        """Writes journaled before a fold is due: ``writes``, or more for a long log."""
        text = self._cache.get(execution_id)
        return max(writes, len(text.records) // FOLD_GROWTH if text is not None else 0)

    def _fold(self, execution_id: str, entry: LogWrite | None, everything: bool) -> None:
        key = self.key_for(execution_id)
        with self.journal.taken(execution_id, everything) as journaled:
            for _ in range(MAX_CONFLICTS):
                text = self._load_for_update(execution_id, key)
                try:
                    for earlier in journaled:
                        for record in earlier.records():
                            text.upsert(record)
                    if entry is not None:
                        for record in entry.records():
                            text.upsert(record)
                    header = self._header(text, entry, journaled)
                    final = header["status"] != "running"
                    # fsync only the final write (~2 ms a step saved on disk): a killed process
                    # loses nothing, and a machine crash can at worst roll a running log back
                    # a few steps.
                    written = self.storage.put(
                        key,
                        text.render(header).encode("utf-8"),
                        if_match=text.token,
                        if_absent=text.token is None,
                        durable=final,
                    )
                except PreconditionFailed:
                    self._cache.pop(execution_id, None)  # another writer's version: read it
                    continue
                except BaseException:
                    self._cache.pop(execution_id, None)  # what we merged was not written
                    raise
                break
            else:
                raise StorageError(
                    f"the log of {execution_id} in {self.location} kept changing under "
                    f"{MAX_CONFLICTS} writes in a row"
                )
        text.token = written.token
        self._unfolded.pop(execution_id, None)
        self._journaled.pop(execution_id, None)
        if final:
            self.journal.finished(execution_id)
            self._cache.pop(execution_id, None)
            with self._locks_guard:
                self._locks.pop(execution_id, None)
        else:
            self._cache[execution_id] = text

    @staticmethod
    def _header(text: LogText, entry: LogWrite | None, journaled: list[LogWrite]) -> dict[str, Any]:
        """The header to write: ``entry``'s; for a periodic fold or a foreach share's write
        (records only) the one the document has, else the last journaled run's write's, else
        any write's (a share's carries its run's header for a log that has none yet)."""
        writes = [*journaled, *([entry] if entry is not None else [])]
        if entry is not None and not entry.records_only:
            return text.header_for(entry)
        if text.header is not None:
            return text.header
        if writes:
            return text.header_for(header_source(writes))
        raise StorageError("a log fold with nothing to write")  # never: a due run journaled

    def append_quietly(self, entry: LogWrite) -> bool:
        """``append``, with a failure logged (False) rather than raised: an activity step's
        carried write must not fail the step, whose records stay with the run."""
        try:
            self.append(entry)
        except (OSError, InvalidExecutionId) as err:
            self._write_failed(entry, err)
            return False
        return True

    async def write_quietly(self, entry: LogWrite) -> bool:
        """``append_quietly`` in the store's threads (for a journal that is not ``inline``:
        on S3 an append is a request)."""
        try:
            await off_loop(self.storage, self.append, entry)
        except (OSError, InvalidExecutionId) as err:
            self._write_failed(entry, err)
            return False
        return True

    def _write_failed(self, entry: LogWrite, err: Exception) -> None:
        logger.error(
            "cannot write execution log for %s in %s: %s (its records stay with the run, "
            "which cannot end before they are written)",
            entry.execution_id,
            self.location,
            err,
        )

    def _lock(self, execution_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(execution_id, threading.Lock())

    def _load_for_update(self, execution_id: str, key: str) -> LogText:
        """The log as this process last wrote it, else as stored. The cached copy is trusted
        without a look at the store: the write is conditional on its version anyway."""
        cached = self._cache.get(execution_id)
        if cached is not None:
            return cached
        blob = self.storage.get(key)
        if blob is None:
            return LogText()
        try:
            document = json.loads(blob.data)
        except (ValueError, UnicodeDecodeError):
            # A damaged document is kept aside, not overwritten silently.
            aside = f"{execution_id}.corrupt-{int(time.time())}"
            self.storage.put(aside, blob.data)
            logger.error(
                "execution log %s in %s was unreadable; kept as %s", key, self.location, aside
            )
            text = LogText()
        else:
            text = LogText.parse(document)
        text.token = blob.info.token
        return text

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
        key = self.key_for(execution_id)
        # The journal first: a fold between the two reads is then already in the document.
        journaled = self.journal.read(execution_id)
        blob = self.storage.get(key)
        if blob is None:
            compressed = self.storage.get(f"{execution_id}{COMPRESSED}")
            if compressed is not None:
                return dict(json.loads(gzip.decompress(compressed.data)))  # finished: no journal
            if not journaled:
                return None
        document = json.loads(blob.data) if blob is not None else None
        return merge_journal(document, journaled)

    async def aread(self, execution_id: str) -> dict[str, Any] | None:
        """``read`` for async callers (the API), off the event loop."""
        self.key_for(execution_id)  # InvalidExecutionId here, not in a thread
        return await off_loop(self.storage, self.read, execution_id)

    # -- rotation ---------------------------------------------------------------------------

    def rotate(self, now: float | None = None) -> RotationReport:
        """Apply the rotation policy once (none: nothing happens); safe while logs are written."""
        if self.policy is None:
            return RotationReport()
        return LogRotation(self, self.policy).run(time.time() if now is None else now)

    def lock_for(self, execution_id: str) -> threading.Lock:
        """The lock every write of this execution's log in this process holds."""
        return self._lock(execution_id)

    def forget(self, execution_id: str) -> None:
        """Drop the cached copy of a log changed by other means (rotation folded its journal)."""
        self._cache.pop(execution_id, None)


@contextlib.asynccontextmanager
async def carried_log(
    logs: WorkflowLogger | None, entry: LogWrite | None
) -> AsyncIterator[CarriedWrite]:
    """Write the log records an activity step carries as the step makes its call.

    On disk (an ``inline`` journal) the append is a line in a file, made here before the call
    goes out: a task of its own and the event-loop turns to run it cost more than the write.
    Elsewhere (S3: a request) the write runs beside the call. ``await carried.written()`` says
    whether it succeeded. A failed write is only logged: the records stay with the workflow,
    which hands them to the next step or writes them itself, so nothing is lost.
    """
    if logs is None or entry is None:
        yield CarriedWrite()
        return
    if logs.journal.inline:
        yield CarriedWrite(done=logs.append_quietly(entry))
        return
    task = asyncio.ensure_future(logs.write_quietly(entry))
    try:
        yield CarriedWrite(task)
    finally:
        if not task.done():
            await asyncio.shield(task)  # never leave a write half-way behind the step
