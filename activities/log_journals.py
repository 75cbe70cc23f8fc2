"""Where an execution's carried log writes wait until they are folded into its document.

Activity steps add the log records they carry to a journal (one ``LogWrite`` each) instead of
rewriting the document; the document is rebuilt from the journal every 32 writes or 30
seconds (a periodic fold in a thread), at every write of the workflow's own and at the end,
and readers merge the journal in (activities/logs.py). A storage backend offers one of two journals:

- ``FileJournal`` (file backend): ``.<id>.journal`` beside the document, one JSON line per
  write, appended in one ``write`` call under ``flock`` (activities/log_files.py). An append
  costs microseconds, so it runs on the event loop. A fold takes the whole journal under the
  lock, so folds of one log are serialised across processes on the machine.
- ``ObjectJournal`` (any backend, used for S3, which has no append and no lock): each write is
  a small object ``.pending/<id>/<time>-<pid>-<n>.json``. An append is one PUT (run in the
  store's threads). A process folds the writes it made itself without listing (it remembers
  them); a full fold (the workflow's own writes, a tidy-up of a dead worker's leftovers)
  lists the execution's pending objects and reads the ones it does not know. Folds are not
  serialised: the document is replaced by a conditional PUT (``If-Match`` the version the
  folder read), and a fold that lost the race reads the document again and redoes its merge.
  Pending objects are deleted only after the document holding them is written, so a crash
  in between leaves them to be merged again (records are upserted: nothing changes twice).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from activities.log_files import (
    JournalAppender,
    parse_journal,
    read_journal,
    taken_journal,
)
from activities.runtime.storage import FileStorage, Storage
from workflows.messages import LogWrite

PENDING = ".pending/"
# Journal files a worker keeps open between appends: more than the runs that usually step at
# once on one worker, far below the usual limit of 1,024 open files.
OPEN_JOURNALS = 128
# Pending writes of other processes are read this many at a time (a reader of a busy log finds
# up to a second's worth): a pool of its own, since its callers may run in the store's.
PARALLEL_READS = 8


class Journal(Protocol):
    @property
    def inline(self) -> bool:
        """An append costs microseconds: it may run on the event loop."""
        ...

    def append(self, execution_id: str, entry: LogWrite) -> None: ...

    def taken(
        self, execution_id: str, everything: bool
    ) -> contextlib.AbstractContextManager[list[LogWrite]]:
        """The writes to fold, in order; dropped from the journal when the block completes.

        ``everything``: every write any process made (else at least this process's own)."""
        ...

    def read(self, execution_id: str) -> list[LogWrite]:
        """Every write waiting, in order (for readers; nothing changes)."""
        ...

    def owner(self, key: str) -> str | None:
        """The execution whose journal holds the object ``key`` (None: not a journal's)."""
        ...

    def finished(self, execution_id: str) -> None:
        """The log is complete: nothing more is appended to its journal from here."""
        ...


def journal_for(storage: Storage) -> Journal:
    if isinstance(storage, FileStorage):
        return FileJournal(storage)
    return ObjectJournal(storage)


def _journal_key(execution_id: str) -> str:
    return f".{execution_id}.journal"


class FileJournal:
    """``.<id>.journal`` files, appended and folded under flock (activities/log_files.py)."""

    inline = True

    def __init__(self, storage: FileStorage, keep: int = OPEN_JOURNALS) -> None:
        self.storage = storage
        self._appender = JournalAppender(keep)

    def append(self, execution_id: str, entry: LogWrite) -> None:
        self._appender.append(self._path(execution_id), entry)

    def finished(self, execution_id: str) -> None:
        self._appender.close(self._path(execution_id))

    def _path(self, execution_id: str) -> str:
        # A string, not a Path: this runs on every step, and the key was checked by the caller.
        return f"{self.storage.root}/{_journal_key(execution_id)}"

    def taken(
        self, execution_id: str, everything: bool
    ) -> contextlib.AbstractContextManager[list[LogWrite]]:
        path = self.storage.path_of(_journal_key(execution_id))
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        return taken_journal(path)  # always the whole journal: it is one file

    def read(self, execution_id: str) -> list[LogWrite]:
        return read_journal(self.storage.path_of(_journal_key(execution_id)))

    def owner(self, key: str) -> str | None:
        if key.startswith(".") and key.endswith(".journal") and "/" not in key:
            return key[1 : -len(".journal")]
        return None


class ObjectJournal:
    """One small object per write under ``.pending/<id>/`` (see the module docstring)."""

    inline = False

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # The writes this process made and has not folded yet: execution id -> key -> write.
        self._mine: dict[str, dict[str, LogWrite]] = {}
        self._guard = threading.Lock()
        self._counter = itertools.count()
        self._readers = ThreadPoolExecutor(PARALLEL_READS, thread_name_prefix="log-journal")

    def append(self, execution_id: str, entry: LogWrite) -> None:
        # Keys sort in write order (nanoseconds first), across processes as far as clocks agree.
        key = (
            f"{PENDING}{execution_id}/{time.time_ns():020d}-{os.getpid()}-"
            f"{next(self._counter):06d}.json"
        )
        self.storage.put(key, entry.model_dump_json().encode("utf-8"), durable=False)
        with self._guard:
            self._mine.setdefault(execution_id, {})[key] = entry

    @contextlib.contextmanager
    def taken(self, execution_id: str, everything: bool) -> Iterator[list[LogWrite]]:
        with self._guard:
            writes: dict[str, LogWrite | None] = dict(self._mine.get(execution_id, {}))
        if everything:
            writes.update(self._others(execution_id, set(writes)))
        ordered = sorted(writes)
        yield [entry for entry in (writes[key] for key in ordered) if entry is not None]
        if ordered:
            self.storage.delete(*ordered)
            with self._guard:
                mine = self._mine.get(execution_id, {})
                for key in ordered:
                    mine.pop(key, None)
                if not mine:
                    self._mine.pop(execution_id, None)

    def _others(self, execution_id: str, known: set[str]) -> dict[str, LogWrite | None]:
        """The pending writes of other processes (None: unreadable, to be deleted)."""
        found: dict[str, LogWrite | None] = {}
        keys = [i.key for i in self.storage.list(f"{PENDING}{execution_id}/") if i.key not in known]
        blobs = (
            self._readers.map(self.storage.get, keys)
            if len(keys) > 1
            else map(self.storage.get, keys)
        )
        for key, blob in zip(keys, blobs, strict=True):
            if blob is None:
                continue  # folded (and deleted) by another process since the listing
            entries = parse_journal(blob.data)
            found[key] = entries[0] if entries else None
        return found

    def read(self, execution_id: str) -> list[LogWrite]:
        found = self._others(execution_id, set())
        return [entry for _, entry in sorted(found.items()) if entry is not None]

    def finished(self, execution_id: str) -> None:
        pass  # nothing is kept per log between appends

    def owner(self, key: str) -> str | None:
        if key.startswith(PENDING):
            return key[len(PENDING) :].partition("/")[0] or None
        return None
