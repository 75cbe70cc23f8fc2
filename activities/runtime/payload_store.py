"""Large values by reference: a payload codec that keeps big payloads out of history.

Any payload larger than LARGE_VALUE_BYTES (default 256 KiB) is written once, content-addressed
(``<first two hex digits>/<sha256>``), to the payloads area of the storage (STORAGE_URL:
a directory, PAYLOAD_STORE_DIR, or ``<prefix>/payloads/`` in an S3 bucket) and replaced in
Temporal by a small reference payload (``encoding: binary/claim-check``, ``sha256``,
``size``). Decoding reads it back, so workflow code, activities and API answers see the full
value, while the event history (and so the PayloadsTooLarge limit of 2 MiB) only ever sees
references. Client and worker must share the storage (a volume, or the same bucket). The
Temporal Web UI shows the reference, not the value; read large values through the API.

A value that splits into several chunks (activities/runtime/payload_chunks.py: a growing
agent conversation, any large JSON list) is stored as its chunks plus a manifest listing
them, each content-addressed, and the reference (``binary/claim-check-chunks``) names the
manifest: a value that shares a prefix with an earlier one adds only its new chunks.

Retention (``PayloadStore.sweep``, run by the worker with log rotation): a value is deleted
once it has not been written or re-referenced for ``retention_seconds(settings)`` =
EXECUTION_TIMEOUT_SECONDS + LOG_MAX_AGE_DAYS + ``REFRESH_SECONDS`` + ``TRUSTED_SECONDS``.
Why this never deletes a value a live run needs: every reference in a run's history was made
by this codec's ``encode`` at some time t after the run started (its input, a step result, a
signal, a child's result, a continue-as-new input), and ``encode`` leaves the object's
modification time no earlier than t - REFRESH_SECONDS - TRUSTED_SECONDS (it rewrites a value
older than REFRESH_SECONDS, and trusts its memory of having done so for TRUSTED_SECONDS). The
run ends at most EXECUTION_TIMEOUT_SECONDS after it started, so before the object's age passes
the limit the run has been over for LOG_MAX_AGE_DAYS: as long as its log is kept.
docs/storage.md has the caveats (a Temporal reset long after the start, a namespace retention
longer than the logs').
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from activities.errors import PayloadStoreError
from activities.runtime.payload_chunks import ChunkCache, split
from activities.runtime.settings import Settings
from activities.runtime.storage import FileStorage, Storage, is_temporary, off_loop

CLAIM_CHECK_ENCODING = b"binary/claim-check"
CHUNKED_ENCODING = b"binary/claim-check-chunks"
# A value encoded again finds its object; when the object is older than this it is written
# again, so its age tells when it was last referenced (to within this long). A day: a value
# referenced every second costs one rewrite a day, not one a reference.
REFRESH_SECONDS = 86400.0
# A chunk this process saved (or found fresh) that long ago is not looked up again: a turn of
# an agent re-references hundreds of chunks, and a HEAD each would cost more than the turn.
TRUSTED_SECONDS = 3600.0
MAX_TRUSTED = 100_000
# A temporary file of a write that crashed is removed after this long (file backend).
STALE_TEMPORARY_SECONDS = 3600.0
_HEX = frozenset("0123456789abcdef")


def retention_seconds(settings: Settings) -> float:
    """How long a large value is kept after it was last written or re-referenced."""
    return (
        settings.execution_timeout_seconds
        + settings.log_max_age_days * 86400
        + REFRESH_SECONDS
        + TRUSTED_SECONDS
    )


@dataclass
class SweepReport:
    deleted: int = 0
    kept: int = 0


class PayloadStore:
    """Large values by their SHA-256 in one storage area (blocking calls: use from threads)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @staticmethod
    def key_for(digest: str) -> str:
        if len(digest) != 64 or not set(digest) <= _HEX:
            raise PayloadStoreError(f"not a payload reference: {digest!r}")
        return f"{digest[:2]}/{digest}"

    def save(
        self, digest: str, data: bytes, now: float | None = None, durable: bool = True
    ) -> bool:
        """Store ``data`` under its digest, or refresh the copy already there (see above);
        True if it was written. ``durable`` False: the caller makes it durable (``sync``)."""
        key = self.key_for(digest)
        now = time.time() if now is None else now
        existing = self.storage.head(key)
        if existing is not None and now - existing.modified < REFRESH_SECONDS:
            return False  # content-addressed: the same bytes, referenced recently enough
        self.storage.put(key, data, durable=durable)  # the same bytes again: harmless
        return True

    def sync(self, digests: Sequence[str]) -> None:
        """Make values saved with ``durable=False`` durable before anything refers to them.
        On disk: an fsync each (the first commits the journal with the data of them all, so
        the rest find nothing to write); object stores' writes are durable already."""
        if not isinstance(self.storage, FileStorage):
            return
        for digest in digests:
            fd = os.open(self.storage.path_of(self.key_for(digest)), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def load(self, digest: str) -> bytes:
        blob = self.storage.get(self.key_for(digest))
        if blob is None:
            raise PayloadStoreError(
                f"large value {digest[:12]}… is missing from the payload store at "
                f"{self.storage.location} (API and workers must share STORAGE_URL; values are "
                "deleted once past retention, docs/storage.md)"
            )
        if hashlib.sha256(blob.data).hexdigest() != digest:
            raise PayloadStoreError(
                f"large value {digest[:12]}… is damaged in {self.storage.location}"
            )
        return blob.data

    def sweep(self, keep_seconds: float, now: float | None = None) -> SweepReport:
        """Delete the values not written or re-referenced for ``keep_seconds``."""
        now = time.time() if now is None else now
        report = SweepReport()
        expired = []
        for info in self.storage.list():
            limit = STALE_TEMPORARY_SECONDS if is_temporary(info.key) else keep_seconds
            if now - info.modified > limit:
                expired.append(info.key)
            else:
                report.kept += 1
        if expired:
            self.storage.delete(*expired)
        report.deleted = len(expired)
        return report


class ClaimCheckCodec(PayloadCodec):
    """Stores payloads over ``threshold`` bytes in ``store`` and passes references."""

    def __init__(self, store: PayloadStore, threshold: int) -> None:
        self.store = store
        self.threshold = threshold
        self._chunks = ChunkCache()
        self._trusted: dict[str, float] = {}  # digest -> when it was last saved or refreshed

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.ByteSize() <= self.threshold:
                out.append(payload)
                continue
            # One trip to the store's threads a value, whatever its number of chunks.
            reference = await off_loop(self.store.storage, self._stored, payload)
            out.append(reference)
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            encoding = payload.metadata.get("encoding")
            if encoding not in (CLAIM_CHECK_ENCODING, CHUNKED_ENCODING):
                out.append(payload)
                continue
            out.append(await off_loop(self.store.storage, self._loaded, payload))
        return out

    def _stored(self, payload: Payload) -> Payload:
        """Store a large payload (whole, or as chunks and a manifest); its reference."""
        chunks = split(payload.data)
        if len(chunks) == 1:
            data = payload.SerializeToString()
            digest = self._save(data, cache=False)
            metadata = {"encoding": CLAIM_CHECK_ENCODING, "size": str(len(data)).encode()}
        else:
            # The chunks are written first and made durable together, then the manifest that
            # names them: a crash never leaves a manifest whose chunks are not on disk.
            written: list[str] = []
            digests = [self._save(chunk, durable=False, written=written) for chunk in chunks]
            self.store.sync(written)
            header = Payload(metadata=payload.metadata)
            header.data = ",".join(digests).encode()
            digest = self._save(header.SerializeToString())
            metadata = {"encoding": CHUNKED_ENCODING, "size": str(len(payload.data)).encode()}
        return Payload(metadata={**metadata, "sha256": digest.encode()})

    def _loaded(self, reference: Payload) -> Payload:
        """The payload a reference names (read back from its chunks if it has a manifest)."""
        data = self._load(reference.metadata["sha256"].decode())
        if reference.metadata.get("encoding") == CLAIM_CHECK_ENCODING:
            return Payload.FromString(data)
        manifest = Payload.FromString(data)
        parts = [self._load(digest) for digest in manifest.data.decode().split(",")]
        return Payload(metadata=manifest.metadata, data=b"".join(parts))

    def _save(
        self,
        data: bytes,
        cache: bool = True,
        durable: bool = True,
        written: list[str] | None = None,
    ) -> str:
        digest = hashlib.sha256(data).hexdigest()
        now = time.time()
        if now - self._trusted.get(digest, -TRUSTED_SECONDS) >= TRUSTED_SECONDS:
            if self.store.save(digest, data, now, durable) and written is not None:
                written.append(digest)
            if len(self._trusted) >= MAX_TRUSTED:
                self._trusted.clear()
            self._trusted[digest] = now
        if cache:
            self._chunks.put(digest, data)
        return digest

    def _load(self, digest: str) -> bytes:
        cached = self._chunks.get(digest)
        if cached is not None:
            return cached
        data = self.store.load(digest)
        self._chunks.put(digest, data)
        return data
