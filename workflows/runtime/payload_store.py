"""Large values by reference: a payload codec that keeps big payloads out of history.

Any payload larger than LARGE_VALUE_BYTES (default 256 KiB) is written once, content-addressed,
to PAYLOAD_STORE_DIR and replaced in Temporal by a small reference payload
(``encoding: binary/claim-check``, ``sha256``, ``size``). Decoding reads it back, so workflow
code, activities and API answers see the full value, while the event history (and so the
PayloadsTooLarge limit of 2 MiB) only ever sees references.

Client and worker must share the directory (a volume in docker-compose). The Temporal Web UI
shows the reference, not the value; read large values through the API.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from workflows.runtime.files import atomic_write

CLAIM_CHECK_ENCODING = b"binary/claim-check"


class PayloadStoreError(RuntimeError):
    """A referenced payload is missing or damaged in the payload store."""


class ClaimCheckCodec(PayloadCodec):
    """Stores payloads over ``threshold`` bytes in ``directory`` and passes references."""

    def __init__(self, directory: Path, threshold: int) -> None:
        self.directory = Path(directory)
        self.threshold = threshold

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.ByteSize() <= self.threshold:
                out.append(payload)
                continue
            data = payload.SerializeToString()
            digest = hashlib.sha256(data).hexdigest()
            await asyncio.to_thread(self._store, digest, data)
            out.append(
                Payload(
                    metadata={
                        "encoding": CLAIM_CHECK_ENCODING,
                        "sha256": digest.encode(),
                        "size": str(len(data)).encode(),
                    }
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != CLAIM_CHECK_ENCODING:
                out.append(payload)
                continue
            digest = payload.metadata["sha256"].decode()
            data = await asyncio.to_thread(self._load, digest)
            out.append(Payload.FromString(data))
        return out

    def path_for(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise PayloadStoreError(f"not a payload reference: {digest!r}")
        return self.directory / digest[:2] / digest

    def _store(self, digest: str, data: bytes) -> None:
        path = self.path_for(digest)
        if path.exists():
            return  # content-addressed: the same bytes are already there
        atomic_write(path, data)  # content-addressed: a rename of the same bytes is harmless

    def _load(self, digest: str) -> bytes:
        path = self.path_for(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PayloadStoreError(
                f"large value {digest[:12]}… is missing from the payload store at "
                f"{self.directory} (PAYLOAD_STORE_DIR must be shared by API and worker)"
            ) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise PayloadStoreError(f"large value {digest[:12]}… is damaged in {self.directory}")
        return data
