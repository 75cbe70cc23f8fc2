"""Large values in chunks that later values share: a growing value costs only what it adds.

An agent's conversation goes to the model in every turn's activity input, each a little longer
than the last. Stored whole (one object per value), the store would receive the whole
conversation again every turn: quadratic in the run. Instead a large value's bytes are cut at
content-defined boundaries and each chunk is stored by its SHA-256, so two values that share a
prefix share every chunk before the first difference; a manifest (the chunks' digests, in
order) is stored the same way and is what the history refers to.

Boundaries: after the first ``SEPARATOR`` (``},``: the end of an object in a JSON list, such
as a message) at least ``MIN_CHUNK`` bytes past the previous boundary (256 KiB: few enough
chunks that a 100 MB value is 400 files, small enough that a turn adds little). A boundary
depends only on the bytes before it, so appending to a value leaves every earlier boundary
where it was; a value without separators is one chunk.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

SEPARATOR = b"},"
MIN_CHUNK = 256 * 1024
# Chunks this process wrote or read lately, by digest: the next turn's value finds most of
# its chunks here instead of asking the store (a HEAD per chunk on S3), and an activity that
# decodes the input its workflow just encoded reads nothing.
CACHE_BYTES = 16 * 1024 * 1024


def split(data: bytes, min_chunk: int = MIN_CHUNK) -> list[bytes]:
    """``data`` cut at content-defined boundaries (see the module docstring)."""
    chunks: list[bytes] = []
    start = 0
    while True:
        found = data.find(SEPARATOR, start + min_chunk)
        if found < 0:
            chunks.append(data[start:])
            return chunks
        end = found + len(SEPARATOR)
        chunks.append(data[start:end])
        start = end
        if start == len(data):
            return chunks


class ChunkCache:
    """A bounded, thread-safe LRU of chunks by digest."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self._max = max_bytes
        self._size = 0
        self._chunks: OrderedDict[str, bytes] = OrderedDict()
        self._guard = threading.Lock()

    def get(self, digest: str) -> bytes | None:
        with self._guard:
            chunk = self._chunks.get(digest)
            if chunk is not None:
                self._chunks.move_to_end(digest)
            return chunk

    def put(self, digest: str, chunk: bytes) -> None:
        if len(chunk) > self._max // 4:
            return  # one huge chunk would push everything else out
        with self._guard:
            if digest in self._chunks:
                self._chunks.move_to_end(digest)
                return
            self._chunks[digest] = chunk
            self._size += len(chunk)
            while self._size > self._max:
                _, dropped = self._chunks.popitem(last=False)
                self._size -= len(dropped)
