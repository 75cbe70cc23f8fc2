"""Fixtures for tests of AI providers and streaming: a fake OpenAI-compatible provider on
loopback (`local`, with a key and prices; `bare`, the same server with neither) and a worker
configured with both. Import the fixtures into a test module to use them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.worker import Worker

from activities.runtime.settings import Settings
from tests.conftest import TEST_KEYS
from tests.fakes import FakeProvider
from worker import engine_worker

PRICES = {"llama3": {"prompt_per_mtok": 2.0, "completion_per_mtok": 10.0}}
# A key that sees only the workflow "other": another key's runs answer it 404.
SCOPED_KEY = "test-scoped-key-0123456789"


@pytest.fixture
def local() -> Iterator[FakeProvider]:
    server = FakeProvider(lambda body: "local says hello in four chunks").start()
    yield server
    server.stop()


@pytest.fixture
def provider_settings(settings: Settings, local: FakeProvider, tmp_path: Path) -> Settings:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"LOCAL_KEY": FakeProvider.KEY}))
    providers = {
        "local": {"base_url": local.base_url, "api_key_secret": "LOCAL_KEY", "prices": PRICES},
        "bare": {"base_url": local.base_url},
    }
    keys = [*TEST_KEYS, {"key": SCOPED_KEY, "name": "scoped", "role": "viewer",
                         "workflows": ["other"]}]  # fmt: skip
    update = {"ai_providers": json.dumps(providers), "secrets_file": secrets,
              "api_keys": SecretStr(json.dumps(keys))}  # fmt: skip
    return settings.model_copy(update=update)


@pytest.fixture
async def provider_worker(client: Client, provider_settings: Settings) -> AsyncIterator[Worker]:
    async with engine_worker(client, provider_settings) as configured, configured:
        yield configured
