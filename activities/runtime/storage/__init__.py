"""Where execution logs and large values live: one storage interface, two backends.

``STORAGE_URL`` picks the backend (``location``): ``file://<dir>`` (default ``file://storage``,
``files.FileStorage``) or ``s3://<bucket>/<prefix>`` (``s3.S3Storage``, with S3_ENDPOINT_URL
for S3-compatible servers). ``open_stores(settings)`` gives the two areas the engine keeps
(``Stores.logs``: execution logs, activities/logs.py; ``Stores.payloads``: large values,
activities/runtime/payload_store.py), built once per process and configuration, so an S3 client
and its connection pool are shared by everything in the process. Every process that reads or
writes them (the API, each worker) must name the same location: that is what lets an API and
workers on different machines share logs and large values. See docs/storage.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activities.runtime.storage.base import (
    Blob,
    ObjectInfo,
    PreconditionFailed,
    Storage,
    StorageError,
    check_key,
    off_loop,
)
from activities.runtime.storage.files import FileStorage, is_temporary
from activities.runtime.storage.location import (
    LOGS_AREA,
    PAYLOADS_AREA,
    FileLocation,
    S3Location,
    parse_storage_url,
)

if TYPE_CHECKING:
    from activities.runtime.settings import Settings

__all__ = [
    "Blob",
    "FileStorage",
    "ObjectInfo",
    "PreconditionFailed",
    "Storage",
    "StorageError",
    "Stores",
    "check_key",
    "check_storage",
    "is_temporary",
    "off_loop",
    "open_stores",
]


@dataclass(frozen=True)
class Stores:
    logs: Storage
    payloads: Storage


_opened: dict[tuple[Any, ...], Stores] = {}
_opening = threading.Lock()


def _identity(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.storage_url,
        settings.s3_endpoint_url,
        settings.aws_region,
        str(settings.workflow_log_dir),
        str(settings.payload_store_dir),
    )


def open_stores(settings: Settings) -> Stores:
    """The logs and payloads stores ``settings`` name, one pair per process and location."""
    identity = _identity(settings)
    with _opening:
        stores = _opened.get(identity)
        if stores is None:
            stores = _opened[identity] = _open(settings)
        return stores


def _open(settings: Settings) -> Stores:
    location = parse_storage_url(settings.storage_url)
    if isinstance(location, FileLocation):
        # The directories settings derive from the URL, or the ones WORKFLOW_LOG_DIR and
        # PAYLOAD_STORE_DIR name (settings.py).
        return Stores(
            FileStorage(Path(settings.workflow_log_dir)),
            FileStorage(Path(settings.payload_store_dir)),
        )
    from activities.runtime.storage.s3 import S3Storage, make_client  # boto3 only when used

    client = make_client(settings.s3_endpoint_url, settings.aws_region)
    logs = S3Storage(client, location.bucket, f"{location.prefix}{LOGS_AREA}/")
    # One client and one pool of threads for both areas.
    payloads = S3Storage(
        client, location.bucket, f"{location.prefix}{PAYLOADS_AREA}/", logs.executor
    )
    return Stores(logs, payloads)


def check_storage(settings: Settings) -> None:
    """At start-up: the configured storage is usable, or ConfigurationError naming the
    variable (an unknown scheme or a missing bucket name already fail in the settings)."""
    location = parse_storage_url(settings.storage_url)
    if isinstance(location, S3Location):
        from activities.runtime.storage.s3 import S3Storage

        logs = open_stores(settings).logs
        assert isinstance(logs, S3Storage)
        logs.check(settings.s3_endpoint_url)
