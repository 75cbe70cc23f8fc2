"""The S3 backend: objects in a bucket under a prefix, through one boto3 client per process.

Works with AWS S3 and S3-compatible servers (MinIO, Ceph RGW, moto) at S3_ENDPOINT_URL.
Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN, a profile, an instance or pod role); the region from AWS_REGION, else
AWS_DEFAULT_REGION.

- ``put`` is one PUT: S3 stores an object whole or not at all, and a later GET or LIST sees it
  (strong read-after-write consistency). A conditional put sends ``If-Match: <etag>`` or
  ``If-None-Match: *``; S3 answers 412 (or 409 when two conditional writes race), which is
  ``PreconditionFailed``.
- ``delete`` batches keys into DeleteObjects requests (1,000 a request).
- boto3's calls block; the client is thread-safe and shared, and the store owns a pool of
  ``CONNECTIONS`` threads (``executor``) that ``off_loop`` runs them in, so S3 latency never
  stalls the event loop and never takes the default executor's few threads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from workflows.errors import ConfigurationError
from activities.runtime.storage.base import (
    Blob,
    ObjectInfo,
    PreconditionFailed,
    StorageError,
    check_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Connections (and threads) per process: a worker runs up to WORKER_MAX_CONCURRENT_ACTIVITIES
# steps at once, each writing its log records beside its call.
CONNECTIONS = 32
_MISSING = {"NoSuchKey", "404", "NotFound"}
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def make_client(endpoint_url: str | None, region: str | None) -> S3Client:
    """One S3 client for the process (thread-safe; its connection pool is shared)."""
    options: dict[str, Any] = {
        "max_pool_connections": CONNECTIONS,
        "connect_timeout": 5,
        "read_timeout": 60,
        # Standard mode retries throttling and 5xx answers with backoff (3 attempts in all).
        "retries": {"mode": "standard", "max_attempts": 3},
    }
    if endpoint_url:
        # S3-compatible servers are addressed by path (http://minio:9000/bucket/key): a
        # virtual-host name (bucket.minio) would need DNS they do not have. Many of them also
        # refuse the CRC checksums boto3 adds by default; large values carry their own
        # SHA-256 and logs are parsed, so checksums are sent only where S3 requires them.
        options["s3"] = {"addressing_style": "path"}
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    session = boto3.session.Session()
    client: S3Client = session.client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=Config(**options)
    )
    return client


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _status(err: ClientError) -> int:
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3Storage:
    """Objects under ``prefix`` in ``bucket``."""

    def __init__(
        self, client: S3Client, bucket: str, prefix: str, executor: Executor | None = None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix  # "" or ending with "/"
        self._executor = executor or ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="s3")

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def executor(self) -> Executor | None:
        return self._executor

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextlib.contextmanager
    def _errors(self, action: str, key: str = "") -> Iterator[None]:
        """botocore's errors as StorageError (an OSError) naming the object."""
        try:
            yield
        except ClientError as err:
            # Only a conditional PUT can fail its precondition (409: two raced each other).
            if action == "PUT" and (_code(err) in _CONFLICT or _status(err) in (409, 412)):
                raise PreconditionFailed(
                    f"{self.location}{key} changed since it was read ({_code(err)})"
                ) from None
            raise StorageError(f"S3 {action} {self.location}{key}: {err}") from None
        except BotoCoreError as err:
            raise StorageError(f"S3 {action} {self.location}{key}: {err}") from None

    def get(self, key: str) -> Blob | None:
        with self._errors("GET", key):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as err:
                if _code(err) in _MISSING:
                    return None
                raise
            data = answer["Body"].read()
            info = ObjectInfo(key, len(data), answer["LastModified"].timestamp(), answer["ETag"])
            return Blob(data, info)

    def head(self, key: str) -> ObjectInfo | None:
        with self._errors("HEAD", key):
            try:
                answer = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as err:
                if _code(err) in _MISSING:
                    return None
                raise
            return ObjectInfo(
                key, answer["ContentLength"], answer["LastModified"].timestamp(), answer["ETag"]
            )

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
        durable: bool = True,  # every PUT is durable on S3
    ) -> ObjectInfo:
        conditions: dict[str, Any] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        with self._errors("PUT", key):
            answer = self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, **conditions
            )
        return ObjectInfo(key, len(data), time.time(), answer["ETag"])

    def delete(self, *keys: str) -> None:
        names = [self._key(k) for k in keys]
        for start in range(0, len(names), 1000):
            batch = names[start : start + 1000]
            with self._errors("DELETE", batch[0].removeprefix(self.prefix)):
                if len(batch) == 1:
                    self.client.delete_object(Bucket=self.bucket, Key=batch[0])
                    continue
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
            failed = [e for e in answer.get("Errors", []) if e.get("Code") not in _MISSING]
            if failed:
                raise StorageError(
                    f"S3 DELETE {self.location}: {len(failed)} objects not deleted, e.g. "
                    f"{failed[0].get('Key')}: {failed[0].get('Message')}"
                )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("LIST", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"].removeprefix(self.prefix),
                        item["Size"],
                        item["LastModified"].timestamp(),
                        item["ETag"],
                    )

    def check(self, endpoint_url: str | None) -> None:
        """At start-up: the bucket exists and answers. ConfigurationError naming the variable."""
        where = f"S3_ENDPOINT_URL={endpoint_url}" if endpoint_url else "AWS S3"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise ConfigurationError(
                f"STORAGE_URL: no credentials for {self.location}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or a profile or role boto3 can find)"
            ) from None
        except EndpointConnectionError as err:
            raise ConfigurationError(
                f"S3_ENDPOINT_URL: cannot reach {endpoint_url or 'AWS S3'}: {err}"
            ) from None
        except ClientError as err:
            status = _status(err)
            if status == 404 or _code(err) in ("NoSuchBucket", "404"):
                problem = f"bucket {self.bucket!r} does not exist at {where}"
            elif status == 403:
                problem = (
                    f"access to bucket {self.bucket!r} at {where} is denied (check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
                )
            else:
                problem = f"bucket {self.bucket!r} at {where}: {err}"
            raise ConfigurationError(f"STORAGE_URL: {problem}") from None
        except BotoCoreError as err:
            raise ConfigurationError(f"S3_ENDPOINT_URL: cannot use {where}: {err}") from None
