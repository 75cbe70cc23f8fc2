"""Log rotation: what the worker does to the logs area every LOG_ROTATION_INTERVAL_SECONDS.

Finished logs older than ``log_compress_after_seconds`` are gzipped (``<id>.json.gz``); logs
older than ``log_max_age_days`` are deleted; then the oldest are deleted until the count and
total size are within ``log_max_files`` and ``log_max_total_mb``. Running logs are never
touched. Ages are the stored objects' modification times; a compressed log's counts from its
compression (an object store cannot back-date an object), so it goes at most
LOG_COMPRESS_AFTER_SECONDS plus one rotation interval later than its last write alone would say.
The same pass removes what crashed writers left: temporary files, and journals nobody folded.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from activities.log_files import LogText, merge_journal
from activities.runtime.settings import Settings
from activities.runtime.storage import ObjectInfo, StorageError, is_temporary

if TYPE_CHECKING:
    from activities.logs import WorkflowLogger

logger = logging.getLogger(__name__)

# Rotation folds a journal, and removes a crashed write's temporary file, left this long.
STALE_SECONDS = 3600.0
DOCUMENT = ".json"
COMPRESSED = ".json.gz"


@dataclass(frozen=True)
class RotationPolicy:
    compress_after_seconds: float
    max_age_seconds: float
    max_files: int
    max_total_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RotationPolicy:
        return cls(
            compress_after_seconds=settings.log_compress_after_seconds,
            max_age_seconds=settings.log_max_age_days * 86400,
            max_files=settings.log_max_files,
            max_total_bytes=int(settings.log_max_total_mb * 1024 * 1024),
        )


@dataclass
class RotationReport:
    compressed: int = 0
    deleted: int = 0
    kept: int = 0


@dataclass(order=True)
class _Stored:
    """One log document as rotation sees it; sorting puts the oldest first."""

    modified: float
    size: int
    key: str


@dataclass
class _Scan:
    logs: list[_Stored] = field(default_factory=list)
    stale_journals: set[str] = field(default_factory=set)


class LogRotation:
    """One pass of the rotation policy over the logs of ``logs``' storage."""

    def __init__(self, logs: WorkflowLogger, policy: RotationPolicy) -> None:
        self.logs = logs
        self.storage = logs.storage
        self.policy = policy
        self.report = RotationReport()

    def run(self, now: float) -> RotationReport:
        scan = self._scan(now)
        for execution_id in sorted(scan.stale_journals):
            try:
                self._fold_left_journal(execution_id)
            except OSError as err:  # one bad log must not stop the rotation of the others
                logger.error("cannot fold the journal left for %s: %s", execution_id, err)
        kept = self._delete_expired(sorted(scan.logs), now)
        self._delete_over_limits(kept)
        self.report.kept = len(kept)
        return self.report

    def _scan(self, now: float) -> _Scan:
        """Sort the area's objects, compressing finished logs old enough on the way."""
        scan = _Scan()
        for info in list(self.storage.list()):
            key = info.key
            if is_temporary(key):
                if now - info.modified >= STALE_SECONDS:
                    self.storage.delete(key)  # a crashed write's temporary file
                continue
            owner = self.logs.journal.owner(key)
            if owner is not None:
                if now - info.modified >= STALE_SECONDS:
                    scan.stale_journals.add(owner)
                continue
            if "/" in key or not key.endswith((DOCUMENT, COMPRESSED)):
                continue
            size = info.size
            if (
                key.endswith(DOCUMENT)
                and now - info.modified >= self.policy.compress_after_seconds
                and self._is_finished(key)
            ):
                compressed = self._compress(key)
                if compressed is not None:
                    self.report.compressed += 1
                    key, size = compressed.key, compressed.size
            # The age it had before compression, in this pass (see the module docstring).
            scan.logs.append(_Stored(info.modified, size, key))
        return scan

    def _delete_expired(self, oldest_first: list[_Stored], now: float) -> list[_Stored]:
        kept: list[_Stored] = []
        for stored in oldest_first:
            if now - stored.modified > self.policy.max_age_seconds and self._deletable(stored.key):
                self.storage.delete(stored.key)
                self.report.deleted += 1
            else:
                kept.append(stored)
        return kept

    def _delete_over_limits(self, kept: list[_Stored]) -> None:
        """Delete the oldest deletable logs until the count and the total size fit."""
        total = sum(stored.size for stored in kept)
        index = 0
        while (
            len(kept) > self.policy.max_files or total > self.policy.max_total_bytes
        ) and index < len(kept):
            stored = kept[index]
            if self._deletable(stored.key):
                self.storage.delete(stored.key)
                self.report.deleted += 1
                total -= stored.size
                kept.pop(index)
            else:
                index += 1

    def _fold_left_journal(self, execution_id: str) -> None:
        """A journal left unfolded an hour (its writer died) is folded into the document;
        one whose log is gone (deleted, or already compressed) is dropped."""
        key = self.logs.key_for(execution_id)
        journal = self.logs.journal
        with self.logs.lock_for(execution_id), journal.taken(execution_id, True) as journaled:
            blob = self.storage.get(key)
            if blob is None:
                return  # leaving the block drops the journal
            try:
                current = json.loads(blob.data)
            except ValueError:
                # A damaged document: the next write keeps it aside; the journal waits for it.
                raise StorageError(
                    f"execution log {key} in {self.storage.location} is unreadable"
                ) from None
            merged = merge_journal(current, journaled)
            self.storage.put(
                key,
                LogText.parse(merged).render(merged).encode("utf-8"),
                if_match=blob.info.token,
            )
            self.logs.forget(execution_id)

    def _is_finished(self, key: str) -> bool:
        try:
            blob = self.storage.get(key)
            return blob is not None and json.loads(blob.data).get("status") != "running"
        except (OSError, ValueError):
            return False

    def _deletable(self, key: str) -> bool:
        return key.endswith(COMPRESSED) or self._is_finished(key)

    def _compress(self, key: str) -> ObjectInfo | None:
        """``<id>.json`` -> ``<id>.json.gz`` (written before the original is deleted)."""
        execution_id = key.removesuffix(DOCUMENT)
        with self.logs.lock_for(execution_id):
            blob = self.storage.get(key)
            if blob is None:
                return None
            target = f"{execution_id}{COMPRESSED}"
            written = self.storage.put(target, gzip.compress(blob.data, mtime=blob.info.modified))
            self.storage.delete(key)
        return written
