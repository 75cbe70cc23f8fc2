"""The storage protocol: what execution logs and large values need from a place to keep bytes.

Five operations on objects named by keys (``a/b/c``, relative to the store's root): ``get``,
``head``, ``put`` (atomic: a reader sees the old object or the new one, never part of one;
optionally conditional on the version last seen or on absence), ``delete`` and ``list`` (with
size and modification time). Both backends give these guarantees: files by a temporary file
renamed into place (and a directory lock around the check of a conditional put), S3 by its
own atomic PUT and conditional requests (``If-Match`` / ``If-None-Match``) and its strong
read-after-write consistency. Nothing here knows about logs or payloads.

Every call blocks (a disk or a network round trip): async code runs them with ``off_loop``,
in the backend's own threads (``executor``), never on the event loop.
"""

from __future__ import annotations

from activities.errors import StorageError, PreconditionFailed

import asyncio
import contextvars
import functools
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")

# A key is a relative path of safe segments: nothing a caller passes can leave the root
# (no "..", no absolute path, no backslash), and every backend can name it as it is.
_SEGMENT = re.compile(r"^[A-Za-z0-9_.:=-]{1,255}$")
MAX_KEY_LENGTH = 900  # S3 allows 1024 bytes, with room for a prefix






@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object.

    ``token`` names this exact version of the object, for ``put(if_match=...)``: the S3 ETag,
    or the file's inode, mtime and size.
    """

    key: str
    size: int
    modified: float  # seconds since the epoch
    token: str


@dataclass(frozen=True)
class Blob:
    data: bytes
    info: ObjectInfo


class Storage(Protocol):
    """A flat namespace of objects under one root (a directory, or a bucket and prefix)."""

    @property
    def location(self) -> str:
        """Where the objects are, for messages: a directory or ``s3://bucket/prefix``."""
        ...

    @property
    def executor(self) -> Executor | None:
        """The threads its blocking calls run in (None: the event loop's default)."""
        ...

    def get(self, key: str) -> Blob | None:
        """The object and its version, or None if there is none."""
        ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
        durable: bool = True,
    ) -> ObjectInfo:
        """Replace the object whole. ``if_match``: only if its version is still that token;
        ``if_absent``: only if there is none (else PreconditionFailed). ``durable=False`` lets
        the file backend skip the fsync (S3 stores every PUT durably)."""
        ...

    def delete(self, *keys: str) -> None:
        """Delete these objects; a missing one is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in no particular order."""
        ...


def check_key(key: str) -> str:
    """``key`` if it is a safe relative key; ValueError otherwise."""
    segments = key.split("/")
    if len(key) > MAX_KEY_LENGTH or not all(
        _SEGMENT.match(s) and s not in (".", "..") for s in segments
    ):
        raise ValueError(f"not a storage key: {key!r}")
    return key


async def off_loop(storage: Storage, call: Callable[..., T], *args: object) -> T:
    """Run a blocking storage call in the storage's threads, keeping the caller's context
    (activity info, log fields), as ``asyncio.to_thread`` does."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        storage.executor, functools.partial(context.run, call, *args)
    )
