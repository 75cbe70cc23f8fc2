"""moto's S3 server as a subprocess on loopback, for the benchmarks and the chaos script.

A process of its own (``python -m moto.server -H 127.0.0.1 -p <free port>``) so its request
handling does not share a GIL with what is being measured. Dummy credentials only, set in the
environment of this Python process and the processes it starts, never in the caller's shell.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from api.cli.devstack import free_port

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto_subprocess(log: Path | None = None) -> Iterator[str]:
    """moto's server on 127.0.0.1 and a free port; yields its endpoint URL."""
    port = free_port()
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=output,
        stderr=subprocess.STDOUT,
        env={**os.environ, **S3_ENV},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)
        if log is not None and not isinstance(output, int):
            output.close()


def use_dummy_credentials() -> None:
    """This process (and what it starts) talks to moto with dummy credentials."""
    os.environ.update(S3_ENV)


def new_bucket(endpoint: str) -> str:
    """A fresh bucket on the server."""
    from activities.runtime.storage.s3 import make_client

    use_dummy_credentials()
    name = f"wfe-{uuid.uuid4().hex[:12]}"
    make_client(endpoint, None).create_bucket(Bucket=name)
    return name
