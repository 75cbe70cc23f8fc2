"""Large values that grow (an agent's conversation) cost the store only what they add."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.api.common.v1 import Payload

from activities.runtime.payload_chunks import MIN_CHUNK, split
from activities.runtime.payload_store import (
    CHUNKED_ENCODING,
    CLAIM_CHECK_ENCODING,
    ClaimCheckCodec,
    PayloadStore,
)
from activities.runtime.storage import FileStorage


def conversation(turns: int, size: int = 50_000) -> bytes:
    messages = [{"role": "tool", "content": f"{turn}:" + "x" * size} for turn in range(turns)]
    return json.dumps({"messages": messages, "model": "m"}, separators=(",", ":")).encode()


def stored_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def test_boundaries_before_an_appended_part_do_not_move() -> None:
    shorter, longer = split(conversation(20)), split(conversation(21))
    assert all(len(chunk) >= MIN_CHUNK for chunk in shorter[:-1])
    assert b"".join(shorter) == conversation(20)
    assert shorter[:-1] == longer[: len(shorter) - 1]
    assert split(b"x" * 500_000) == [b"x" * 500_000]  # no boundary: one chunk


async def test_a_growing_conversation_adds_only_its_new_messages(tmp_path: Path) -> None:
    codec = ClaimCheckCodec(PayloadStore(FileStorage(tmp_path)), threshold=256 * 1024)
    growth = []
    for turns in range(10, 40):
        before = stored_bytes(tmp_path)
        value = Payload(metadata={"encoding": b"json/plain"}, data=conversation(turns))
        (reference,) = await codec.encode([value])
        assert reference.metadata["encoding"] == CHUNKED_ENCODING
        assert reference.ByteSize() < 200  # the history holds one digest
        growth.append(stored_bytes(tmp_path) - before)
        fresh = ClaimCheckCodec(PayloadStore(FileStorage(tmp_path)), threshold=256 * 1024)
        assert await fresh.decode([reference]) == [value]  # another process reads it back
    # Each turn adds one 50 KB message: the store grows by about that (the chunk that held
    # the end, and a manifest), never by the whole conversation (0.5 to 2 MB here).
    assert max(growth[1:]) < 3 * (MIN_CHUNK + 50_000)  # the first turn writes it all
    assert sum(growth) < 0.25 * sum(len(conversation(t)) for t in range(10, 40))


async def test_a_value_without_boundaries_is_stored_whole_as_before(tmp_path: Path) -> None:
    codec = ClaimCheckCodec(PayloadStore(FileStorage(tmp_path)), threshold=1024)
    value = Payload(metadata={"encoding": b"binary/plain"}, data=b"y" * 300_000)
    (reference,) = await codec.encode([value])
    assert reference.metadata["encoding"] == CLAIM_CHECK_ENCODING
    assert await codec.decode([reference]) == [value]
