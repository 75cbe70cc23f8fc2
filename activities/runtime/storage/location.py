"""STORAGE_URL: where execution logs and large values live.

``file://<dir>`` (default ``file://storage``): a directory on this machine; logs in
``<dir>/workflow_logs`` and large values in ``<dir>/payloads`` unless WORKFLOW_LOG_DIR or
PAYLOAD_STORE_DIR name other directories. ``s3://<bucket>/<prefix>``: an S3 bucket (or an
S3-compatible server at S3_ENDPOINT_URL); logs under ``<prefix>/workflow_logs/``, large values
under ``<prefix>/payloads/``. Parsed when the settings load, so a bad URL stops start-up with
a message naming the variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LOGS_AREA = "workflow_logs"
PAYLOADS_AREA = "payloads"

# S3's rules for bucket names (general purpose buckets): 3-63 characters, lowercase letters,
# digits, dots and hyphens, starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9_.=-]+$")


@dataclass(frozen=True)
class FileLocation:
    root: Path

    def __str__(self) -> str:
        return f"file://{self.root}"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or "a/b/": the keys of both areas start with it

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_storage_url(url: str) -> FileLocation | S3Location:
    """The location a STORAGE_URL names; ValueError saying what is wrong."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("file", "s3"):
        raise ValueError(
            f"unknown storage {text!r}: must be file://<directory> (e.g. file://storage or "
            "file:///var/lib/wfe) or s3://<bucket>/<prefix>"
        )
    if scheme == "file":
        if not rest:
            raise ValueError("file:// needs a directory, e.g. file://storage")
        return FileLocation(Path(rest))
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError("s3:// needs a bucket, e.g. s3://my-bucket/workflow-engine")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(
            f"{bucket!r} is not an S3 bucket name (3-63 lowercase letters, digits, dots and "
            "hyphens)"
        )
    segments = [s for s in prefix.split("/") if s]
    if any(s in (".", "..") or not _PREFIX_SEGMENT.match(s) for s in segments):
        raise ValueError(
            f"prefix {prefix!r}: use letters, digits and _ . = - between slashes, no . or .."
        )
    return S3Location(bucket, "".join(f"{s}/" for s in segments))
