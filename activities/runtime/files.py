"""The one atomic file write: a temporary file beside the target, renamed over it.

Readers never see half a file, and a crash leaves either the old file or the new one (plus,
at worst, a temporary file that the writers' tidy-ups remove). Used by the definition store
and by the file storage backend (activities/runtime/storage/files.py), which holds the
execution logs and the large values when STORAGE_URL is a file:// URL.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMPORARY_SUFFIX = ".tmp"
# Temporary names unique in the process (next() on a count is atomic under the GIL): two
# threads writing one file at once never share a temporary file.
_WRITES = itertools.count()


def atomic_write(
    path: Path,
    data: bytes | str,
    *,
    durable: bool = True,
    tmp: Path | None = None,
    replace: Callable[[Path, Path], None] = os.replace,
) -> os.stat_result:
    """Write ``data`` to ``path`` atomically; returns the new file's stat.

    ``durable`` fsyncs before the rename (a machine crash then keeps the new file). ``tmp``
    names the temporary file when the caller serialises its writes (saves the random-name
    retries of mkstemp on every write); otherwise a unique hidden name is used. ``replace``
    puts the written temporary file in place (``os.replace``); a conditional write passes one
    that checks its condition under a lock first and raises to leave the target as it was.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    target = tmp or path.with_name(
        f".{path.name}.{os.getpid()}.{next(_WRITES):x}{TEMPORARY_SUFFIX}"
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, flags, 0o644)
    try:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
            stat = os.fstat(fd)
        finally:
            os.close(fd)
        replace(target, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        raise
    return stat


def write_json(path: Path, document: Any) -> None:
    """A JSON document, indented, durably and atomically."""
    atomic_write(path, json.dumps(document, ensure_ascii=False, indent=2) + "\n")
