"""The file backend: objects are files under a root directory, keys their relative paths.

``put`` is the project's one atomic write (activities/runtime/files.py): a temporary file beside
the target, renamed over it. A conditional put checks the target's version under an exclusive
``flock`` of its directory, held only around the check and the rename (microseconds), so it is
a true compare-and-swap across processes on one machine (or on a file system whose locks are
shared, such as NFSv4). The version token is the file's inode, mtime and size: every put
renames a new inode into place.

A crash between writing the temporary file and the rename leaves it behind (hidden, ending
``.tmp``): ``is_temporary`` names those, and their owners' tidy-ups delete stale ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path

from activities.runtime.files import TEMPORARY_SUFFIX, atomic_write
from activities.runtime.storage.base import (
    Blob,
    ObjectInfo,
    PreconditionFailed,
    check_key,
)


def _token(stat: os.stat_result) -> str:
    return f"{stat.st_ino:x}.{stat.st_mtime_ns:x}.{stat.st_size:x}"


def _info(key: str, stat: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key, stat.st_size, stat.st_mtime, _token(stat))


def is_temporary(key: str) -> bool:
    """A temporary file of a put that never finished (or is finishing now)."""
    name = key.rpartition("/")[2]
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


@contextlib.contextmanager
def _directory_locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class FileStorage:
    """Objects as files under ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    @property
    def executor(self) -> Executor | None:
        return None  # local disk: the event loop's default threads are enough

    def path_of(self, key: str) -> Path:
        return self.root / check_key(key)

    def get(self, key: str) -> Blob | None:
        try:
            with self.path_of(key).open("rb") as handle:
                # The version of what was read: a rename after the open does not change it.
                stat = os.fstat(handle.fileno())
                return Blob(handle.read(), _info(key, stat))
        except FileNotFoundError:
            return None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            return _info(key, self.path_of(key).stat())
        except FileNotFoundError:
            return None

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
        durable: bool = True,
    ) -> ObjectInfo:
        path = self.path_of(key)
        if if_match is None and not if_absent:
            return _info(key, atomic_write(path, data, durable=durable))

        def replace_if_unchanged(tmp: Path, target: Path) -> None:
            with _directory_locked(target.parent):
                try:
                    current: str | None = _token(target.stat())
                except FileNotFoundError:
                    current = None
                if (if_absent and current is not None) or (
                    if_match is not None and current != if_match
                ):
                    raise PreconditionFailed(f"{target} changed since it was read")
                os.replace(tmp, target)

        return _info(key, atomic_write(path, data, durable=durable, replace=replace_if_unchanged))

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.path_of(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the directory the prefix is in: ``a/b/c`` starts under ``a/b``.
        directory, _, _ = prefix.rpartition("/")
        start = self.root / check_key(directory) if directory else self.root
        yield from self._walk(start, f"{directory}/" if directory else "", prefix)

    def _walk(self, directory: Path, relative: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            key = relative + entry.name
            if entry.is_dir(follow_symlinks=False):
                if key.startswith(prefix) or prefix.startswith(f"{key}/"):
                    yield from self._walk(Path(entry.path), f"{key}/", prefix)
            elif key.startswith(prefix):
                try:
                    yield _info(key, entry.stat(follow_symlinks=False))
                except FileNotFoundError:
                    continue  # deleted while we looked
