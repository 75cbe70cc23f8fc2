"""A real S3-compatible server on loopback for the tests: moto's server mode (``moto[server]``).

``ThreadedMotoServer`` listens on 127.0.0.1 and a free port, nowhere else; the AWS variables
the SDK needs are dummies set for the tests that use it only (a module-scoped fixture).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from activities.runtime.storage.s3 import make_client
from api.cli.devstack import free_port

S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 on 127.0.0.1 (a free port); yields its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module", name="s3_endpoint")
def s3_endpoint_fixture() -> Iterator[str]:
    """moto's S3 for a test module (import this name; tests ask for ``s3_endpoint``)."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in S3_TEST_ENV.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        with moto_server() as endpoint:
            yield endpoint


def new_bucket(endpoint: str) -> str:
    name = f"wfe-{uuid.uuid4().hex[:12]}"
    make_client(endpoint, None).create_bucket(Bucket=name)
    return name


def bucket_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every key in the bucket (under ``prefix``), listed by the server itself."""
    pages = make_client(endpoint, None).get_paginator("list_objects_v2")
    return sorted(
        item["Key"]
        for page in pages.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    )
