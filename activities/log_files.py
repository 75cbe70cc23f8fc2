"""The on-disk pieces of an execution log: the JSON document and its journal.

``<id>.json`` is the document (SPEC §4): indented JSON with one step record per line, always
replaced whole (temporary file + rename), so a reader never sees half of it.

``.<id>.journal`` holds the log writes that activity steps made since the document was last
rewritten, one :class:`LogWrite` as JSON per line. Appending a line costs a few microseconds
where rewriting the document costs a rename that makes ext4 start writing the file back (about
a millisecond a step, measured in bench/README.md); the document is rewritten from the journal
at least once a second while steps flow, before every wait and at the end, and readers of the
log (the API, ``WorkflowLogger.read``) merge the journal in, so they always see every write.
Appends and folds of one journal are serialised by ``flock``, across processes too.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from workflows.shared import LogWrite, StepRecord

# The SPEC's keys first, in its order; extra keys after.
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
RECORD_EXTRAS = ("error_type", "attempts", "usage")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def header_of(entry: LogWrite) -> dict[str, Any]:
    data = entry.model_dump(mode="json", exclude={"step", "steps"})
    return {key: data.get(key) for key in HEADER_KEYS}


def record_of(step: StepRecord) -> dict[str, Any]:
    data = step.model_dump(mode="json")
    record = {key: data[key] for key in RECORD_KEYS}
    record.update({key: data[key] for key in RECORD_EXTRAS if data.get(key) is not None})
    return record


@dataclass
class LogText:
    """A log document as last written: a rendered line per step record, ordered by seq.

    A rewrite renders only the records it brings and joins the lines kept from before, so it
    costs the same at step 5 and at step 5,000.
    """

    seqs: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    stamp: tuple[int, int] = (0, 0)  # (mtime_ns, size) of the file this was written to
    folded_at: float = 0.0  # time.monotonic() of that write

    @classmethod
    def parse(cls, document: dict[str, Any]) -> LogText:
        text = cls()
        for step in sorted(document.get("steps", []), key=lambda s: s.get("seq", -1)):
            text.seqs.append(step.get("seq", -1))
            text.lines.append(dumps(step))
        return text

    def upsert(self, step: StepRecord) -> None:
        line = dumps(record_of(step))
        if not self.seqs or self.seqs[-1] < step.seq:
            self.seqs.append(step.seq)  # the usual case: the next step in order
            self.lines.append(line)
            return
        position = bisect.bisect_left(self.seqs, step.seq)
        if position < len(self.seqs) and self.seqs[position] == step.seq:
            self.lines[position] = line
        else:
            self.seqs.insert(position, step.seq)
            self.lines.insert(position, line)

    def render(self, header: dict[str, Any]) -> str:
        parts = []
        for key, value in header.items():
            if key == "steps":
                body = "[\n    " + ",\n    ".join(self.lines) + "\n  ]" if self.lines else "[]"
                parts.append(f'  "steps": {body}')
            else:
                parts.append(f"  {dumps(key)}: {dumps(value)}")
        return "{\n" + ",\n".join(parts) + "\n}\n"


def journal_path(document: Path) -> Path:
    return document.with_name(f".{document.stem}.journal")


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


def append_to_journal(path: Path, entry: LogWrite) -> None:
    """Add one write to the journal (created if need be); one ``write`` call, under flock."""
    data = memoryview((entry.model_dump_json() + "\n").encode("utf-8"))
    fd = _locked_journal(path, os.O_WRONLY | os.O_APPEND)
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
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


def merge_journal(document: dict[str, Any] | None, entries: list[LogWrite]) -> dict[str, Any]:
    """A document with journal writes applied (for readers; the file is not changed)."""
    if not entries:
        assert document is not None
        return document
    text = LogText.parse(document or {})
    for entry in entries:
        for record in entry.records():
            text.upsert(record)
    header = header_of(entries[-1])
    if document is not None and document.get("status") != "running":
        header = {key: document.get(key) for key in HEADER_KEYS}  # a final write wins
    merged: dict[str, Any] = json.loads(text.render(header))
    return merged
