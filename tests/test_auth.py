"""API key configuration: parsing, start-up errors naming the variable, AUTH_DISABLED."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from activities.runtime.settings import load_settings
from api.server.auth import Action, load_key_ring, new_admin_key_file
from workflows.errors import ConfigurationError

KEY = "k" * 20


def test_no_keys_fails_at_start_up_naming_the_variables() -> None:
    with pytest.raises(ConfigurationError, match="API_KEYS or API_KEYS_FILE"):
        load_key_ring(load_settings())


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{not json", "API_KEYS: not valid JSON"),
        ('{"key": "x"}', "must be a JSON list"),
        (json.dumps([{"key": "short", "name": "a", "role": "admin"}]), "API_KEYS: 0.key"),
        (json.dumps([{"key": KEY, "name": "a", "role": "root"}]), "API_KEYS: 0.role"),
        (json.dumps([{"key": KEY, "name": "a", "role": "runner", "workflows": []}]), "workflows"),
        (
            json.dumps(
                [
                    {"key": KEY, "name": "a", "role": "admin"},
                    {"key": KEY + "x", "name": "a", "role": "admin"},
                ]
            ),
            "names must be unique",
        ),
    ],
)
def test_bad_keys_name_the_problem(raw: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        load_key_ring(load_settings(api_keys=raw))


def test_keys_file_and_roles(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    admin = new_admin_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    ring = load_key_ring(load_settings(api_keys_file=path))
    principal = ring.authenticate(admin)
    assert principal is not None and principal.role == "admin" and principal.sees("anything")
    assert ring.authenticate("wrong") is None and ring.authenticate(None) is None
    with pytest.raises(ConfigurationError, match="API_KEYS_FILE: cannot read"):
        load_key_ring(load_settings(api_keys_file=tmp_path / "missing.json"))


def test_scoped_runner_and_viewer() -> None:
    raw = json.dumps(
        [
            {"key": KEY, "name": "r", "role": "runner", "workflows": ["a"]},
            {"key": KEY + "v", "name": "v", "role": "viewer", "workflows": ["a", "b"]},
        ]
    )
    ring = load_key_ring(load_settings(api_keys=raw))
    runner, viewer = ring.authenticate(KEY), ring.authenticate(KEY + "v")
    assert runner is not None and viewer is not None
    assert runner.can(Action.RUN) and runner.can(Action.CONTROL) and not runner.can(Action.MANAGE)
    assert viewer.can(Action.READ) and not viewer.can(Action.RUN)
    assert runner.sees("a") and not runner.sees("b") and viewer.sees("b")


def test_auth_disabled_is_explicit_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ring = load_key_ring(load_settings(auth_disabled=True))
    assert "AUTH_DISABLED=true" in caplog.text
    principal = ring.authenticate(None)
    assert principal is not None and principal.role == "admin"
