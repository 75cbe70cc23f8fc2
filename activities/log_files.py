"""The pieces of an execution log: the JSON document, and the file backend's journal.

``<id>.json`` is the document: indented JSON with one step record per line, always
replaced whole (an atomic put of the storage), so a reader never sees half of it.

``.<id>.journal`` (file backend) holds the log writes that activity steps made since the
document was last rewritten, one :class:`LogWrite` as JSON per line. Appending a line costs a
few microseconds where rewriting the document costs a rename that makes ext4 start writing the
file back (about a millisecond a step, measured in bench/README.md); the document is rewritten
from the journal every few seconds while steps flow (in a thread, off the event loop), before
every wait and at the end, and readers of the log (the API, ``WorkflowLogger.read``) merge
the journal in, so they always see every write. Appends and folds of one journal are
serialised by ``flock``, across processes too. Object stores have no append:
activities/log_journals.py says what replaces it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from workflows.messages import LogWrite, StepRecord
from workflows.usage import Usage

# The documented keys first, in README "Execution logs" order; extra keys after.
HEADER_KEYS = (
    "execution_id",
    "workflow_id",
    "start_time",
    "end_time",
    "status",
    "steps",
    "run_id",
    "workflow_name",
    "workflow_version",
    "error",
    "usage",
)
RECORD_KEYS = (
    "step_id",
    "name",
    "start_time",
    "end_time",
    "status",
    "output_vars",
    "error",
    "seq",
    "type",
)
RECORD_EXTRAS = (
    "error_type",
    "attempts",
    "usage",
    "run_id",
    "path",
    "reused_from",
    "reuse_key",
    "child_execution_id",
)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def header_of(entry: LogWrite) -> dict[str, Any]:
    data = entry.model_dump(mode="json", exclude={"step", "steps"})
    header = {key: data.get(key) for key in HEADER_KEYS}
    if header["usage"] is None:  # a run with no AI call has spent zero, not nothing
        header["usage"] = Usage().for_run()
    return header


def record_of(step: StepRecord) -> dict[str, Any]:
    data = step.model_dump(mode="json")
    record = {key: data[key] for key in RECORD_KEYS}
    record.update({key: data[key] for key in RECORD_EXTRAS if data.get(key) is not None})
    return record


@dataclass
class LogText:
    """A log document as last written: a rendered line per step record.

    A record is known by (run_id, seq): after a Temporal reset, the new run's records sit
    beside the earlier run's instead of replacing them. Lines are kept in start order; a
    rewrite renders only the records it brings and joins the lines kept from before, so it
    costs the same at step 5 and at step 5,000.
    """

    records: dict[tuple[str, int], tuple[tuple[str, int], str, bool]] = field(
        default_factory=dict
    )  # (run_id, seq) -> (start order, rendered line, finished)
    in_order: bool = True  # records were added in start order (no sort needed to render)
    header: dict[str, Any] | None = None  # the header last rendered (or parsed)
    # The storage version of the document this was read from or written as (None: there is
    # none yet): the next write is conditional on it, so no other writer's fold is lost.
    token: str | None = None

    @classmethod
    def parse(cls, document: dict[str, Any]) -> LogText:
        text = cls()
        for step in document.get("steps", []):
            text._put(step, dumps(step))
        if document:
            text.header = {key: document.get(key) for key in HEADER_KEYS}
        return text

    def upsert(self, step: StepRecord) -> None:
        record = record_of(step)
        self._put(record, dumps(record))

    def _put(self, record: dict[str, Any], line: str) -> None:
        identity = (str(record.get("run_id") or ""), int(record.get("seq", -1)))
        order = (str(record.get("start_time") or ""), identity[1])
        finished = record.get("status") != "running"
        known = self.records.get(identity)
        if known is not None and known[2] and not finished:
            # A write that was overtaken (a cancelled log write's thread finishing after the
            # final write) never turns a finished step back into a running one.
            return
        if known is None and self.records:
            last = next(reversed(self.records.values()))[0]
            self.in_order = self.in_order and order >= last
        self.records[identity] = (order, line, finished)

    def header_for(self, entry: LogWrite) -> dict[str, Any]:
        """The header to write with ``entry``: its own, unless the log is already closed for
        the same run and ``entry`` still says running (an overtaken write: see ``_put``).
        A later run of the execution (after a reset) writes its own header."""
        header = header_of(entry)
        closed = self.header
        if (
            closed is not None
            and closed.get("status") != "running"
            and header["status"] == "running"
            and closed.get("run_id") == header["run_id"]
        ):
            return closed
        return header

    def lines(self) -> list[str]:
        if not self.in_order:
            self.records = dict(sorted(self.records.items(), key=lambda item: item[1][0]))
            self.in_order = True
        return [line for _, line, _ in self.records.values()]

    def render(self, header: dict[str, Any]) -> str:
        self.header = header
        lines = self.lines()
        parts = []
        for key, value in header.items():
            if key == "steps":
                body = "[\n    " + ",\n    ".join(lines) + "\n  ]" if lines else "[]"
                parts.append(f'  "steps": {body}')
            else:
                parts.append(f"  {dumps(key)}: {dumps(value)}")
        return "{\n" + ",\n".join(parts) + "\n}\n"


def _locked_journal(path: Path, flags: int) -> int:
    """An fd of the journal at ``path`` (created if need be), holding its exclusive flock.

    A journal that a fold removed while we waited for the lock is left for a fresh one, so
    every holder of the lock holds the journal the path names.
    """
    while True:
        fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            return fd
        os.close(fd)


def _write_all(fd: int, entry: LogWrite) -> None:
    data = memoryview((entry.model_dump_json() + "\n").encode("utf-8"))
    while data:
        data = data[os.write(fd, data) :]


class JournalAppender:
    """Appends to journals through files it keeps open, one per running log (at most
    ``keep``, the least recently used closed first).

    Under load the ``open`` and ``close`` of each append cost more than the write. An open
    file is locked only while a line is written; a journal that a fold removed meanwhile
    (here or in another process) is seen after the lock is taken (no links left), and a
    fresh one is opened in its place.
    """

    def __init__(self, keep: int = 128) -> None:
        self._keep = keep
        self._open: OrderedDict[str, int] = OrderedDict()
        self._guard = threading.Lock()

    def append(self, path: str, entry: LogWrite) -> None:
        with self._guard:
            fd = self._open.pop(path, None)
        if fd is None:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink == 0:  # folded away: the path names a new journal
                stale, fd = fd, -1
                os.close(stale)
                fd = _locked_journal(Path(path), os.O_WRONLY | os.O_APPEND)
            _write_all(fd, entry)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        with self._guard:
            extra = self._open.pop(path, None)  # another thread's, appending meanwhile
            self._open[path] = fd
            while len(self._open) > self._keep:
                os.close(self._open.popitem(last=False)[1])
        if extra is not None:
            os.close(extra)

    def close(self, path: str) -> None:
        """The log is finished: its journal's file is closed."""
        with self._guard:
            fd = self._open.pop(path, None)
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def taken_journal(path: Path) -> Iterator[list[LogWrite]]:
    """The journal's writes, locked; the journal is removed when the block completes.

    The lock serialises folds of one log, across processes too: the caller reads the
    document and writes it back inside the block. Appenders wait meanwhile, then start a new
    journal, so no write falls between reading and removing.
    """
    fd = _locked_journal(path, os.O_RDWR)
    try:
        with os.fdopen(os.dup(fd), "rb") as handle:
            entries = parse_journal(handle.read())
        yield entries
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    finally:
        os.close(fd)


def read_journal(path: Path) -> list[LogWrite]:
    try:
        return parse_journal(path.read_bytes())
    except FileNotFoundError:
        return []


def parse_journal(data: bytes) -> list[LogWrite]:
    """Every complete line; a torn last line (a crash mid-append) is skipped."""
    entries = []
    for line in data.splitlines():
        try:
            entries.append(LogWrite.model_validate_json(line))
        except ValidationError:
            continue
    return entries


def header_source(writes: list[LogWrite]) -> LogWrite:
    """The write whose header a log takes: the latest of its run's own, else (only foreach
    shares' writes, records only) the latest."""
    return next((write for write in reversed(writes) if not write.records_only), writes[-1])


def merge_journal(document: dict[str, Any] | None, entries: list[LogWrite]) -> dict[str, Any]:
    """A document with journal writes applied (for readers; the file is not changed)."""
    if not entries:
        assert document is not None
        return document
    text = LogText.parse(document or {})
    for entry in entries:
        for record in entry.records():
            text.upsert(record)
    source = header_source(entries)
    header = header_of(source)
    if document is not None and document.get("status") != "running":
        header = {key: document.get(key) for key in HEADER_KEYS}  # a final write wins
    elif text.header is not None:
        header = text.header if source.records_only else text.header_for(source)
    merged: dict[str, Any] = json.loads(text.render(header))
    return merged
