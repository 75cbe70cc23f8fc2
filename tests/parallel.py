"""The suite on several pytest-xdist workers (`make test` runs `-n 2`).

The controller starts one Temporal dev server per worker before the workers start, and stops
them after every worker is done; each worker runs its tests against its own server, with its
own payload store, ports, databases and task queues (tests/conftest.py). The servers belong
to the controller so that the replay of every history of the session
(tests/test_replay.py, marked `last`) can read each of them once every other test on every
worker has finished: each worker writes how many tests it has finished, and that test waits
until they add up.

Without -n (a focused run) none of this applies: the session fixture starts its own server.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from api.cli.devstack import DevServer

SERVERS = "wfe_temporal_servers"  # workerinput: every worker's server, as JSON
OWN = "wfe_temporal_server"  # workerinput: the index of this worker's server in SERVERS
SHARED = "wfe_shared_dir"  # workerinput: where the workers count their finished tests

_servers_key = pytest.StashKey[list[tuple[DevServer, IO[bytes]]]]()
_root_key = pytest.StashKey[Path]()
_counted_key = pytest.StashKey[dict[str, Any]]()


@dataclass(frozen=True)
class SessionServer:
    """A dev server of this session and the payload store its runs write large values to."""

    address: str
    payload_dir: Path

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


def start_servers(config: pytest.Config, count: int) -> None:
    """Controller: one dev server per worker (SQLite and payloads under the run's basetemp)."""
    root = config._tmp_path_factory.getbasetemp() / "servers"  # type: ignore[attr-defined]
    root.mkdir(parents=True, exist_ok=True)
    started: list[tuple[DevServer, IO[bytes]]] = []
    config.stash[_servers_key] = started
    config.stash[_root_key] = root
    for index in range(count):
        own = root / f"server-{index}"
        own.mkdir()
        log = (own / "temporal.log").open("wb")
        server = DevServer(db_file=own / "temporal.db", headless=True, log=log)
        server.start()
        started.append((server, log))
    for server, _ in started:
        asyncio.run(server.wait_ready())


def configure_node(node: Any) -> None:
    """Controller: hand a worker every server, which one is its own, and the shared dir."""
    config = node.config
    started = config.stash.get(_servers_key, [])
    if not started:
        return
    root = config.stash[_root_key]
    servers = [
        {"address": server.address, "payload_dir": str(root / f"server-{index}" / "payloads")}
        for index, (server, _) in enumerate(started)
    ]
    number = int(node.gateway.id.removeprefix("gw") or 0)  # a replaced worker gets gw2, ...
    node.workerinput[SERVERS] = json.dumps(servers)
    node.workerinput[OWN] = number % len(servers)
    node.workerinput[SHARED] = str(root)


def stop_servers(config: pytest.Config) -> None:
    """Controller: once every worker is done."""
    for server, log in config.stash.get(_servers_key, []):
        server.stop()
        log.close()


def _workerinput(config: pytest.Config) -> dict[str, Any] | None:
    given = getattr(config, "workerinput", None)
    return given if given is not None and SERVERS in given else None


def own_server(config: pytest.Config) -> SessionServer | None:
    """Worker: the controller's server for this worker; None without -n."""
    given = _workerinput(config)
    if given is None:
        return None
    return every_server(config)[int(given[OWN])]


def every_server(config: pytest.Config) -> list[SessionServer]:
    given = _workerinput(config)
    if given is None:
        return []
    return [SessionServer(s["address"], Path(s["payload_dir"])) for s in json.loads(given[SERVERS])]


def is_last(item: pytest.Item) -> bool:
    return item.get_closest_marker("last") is not None


def count_finished(config: pytest.Config, nodeid: str) -> None:
    """Worker: one more test done (tests marked `last` are not counted: they wait)."""
    given = _workerinput(config)
    if given is None:
        return
    counted = config.stash.setdefault(_counted_key, {"done": 0})
    if nodeid in counted.get("last", ()):
        return
    counted["done"] += 1
    path = Path(given[SHARED]) / f"finished-{given['workerid']}"
    partial = path.with_name(f".{path.name}")
    partial.write_text(str(counted["done"]))
    os.replace(partial, path)  # a reader never sees half a number


def remember_last(config: pytest.Config, items: list[pytest.Item]) -> None:
    counted = config.stash.setdefault(_counted_key, {"done": 0})
    counted["last"] = {item.nodeid for item in items if is_last(item)}


async def wait_for_every_other_test(session: pytest.Session, within: float) -> None:
    """Worker: until every test not marked `last` has finished, on every worker."""
    given = _workerinput(session.config)
    if given is None:
        return
    expected = sum(1 for item in session.items if not is_last(item))
    shared = Path(given[SHARED])
    deadline = asyncio.get_running_loop().time() + within
    while True:
        finished = sum(int(f.read_text() or 0) for f in shared.glob("finished-gw*"))
        if finished >= expected:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{finished} of {expected} tests finished on the workers after {within:.0f}s"
            )
        await asyncio.sleep(0.5)
