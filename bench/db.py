"""Definition save and load latency on the control-plane database (docs/database.md).

    python -m bench.db [--saves 200] [--loads 2000] [--files-store old_store.py]

For SQLite (a file in a temporary directory) and PostgreSQL (Debian's server, started as the
tests start it: tests/postgres.py), p50/p99 of:

- save: ``DatabaseDefinitionStore.save`` of a changed document (a new version each time);
- load: ``get(workflow_id)`` of the current version, what every start does (one indexed row
  read; the parsed definition is cached per version);
- load, other process: the same read right after another engine (another API process) saved
  a new version, so the version is not cached yet (a row read plus a parse).

``--files-store`` names a copy of the definitions-directory store of earlier versions (e.g.
``git show 9c44b6c:api/server/store.py > /tmp/old_store.py``) to measure it the same way, for
comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from api.server.db.engine import open_engine
from api.server.db.migrate import upgrade
from api.server.db.store import DatabaseDefinitionStore

WORKFLOW_ID = "bench-db"


def document(index: int) -> dict[str, Any]:
    return {
        "id": WORKFLOW_ID,
        "description": f"edit {index}",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "steps": [
            {"id": f"s{i}", "type": "set", "values": {f"v{i}": "{n}", "t": f"step {i}"}}
            for i in range(20)
        ],
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000}


async def timed(count: int, work: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for index in range(count):
        began = time.perf_counter()
        await work(index)
        samples.append(time.perf_counter() - began)
    return samples


async def measure_database(url: str, saves: int, loads: int) -> dict[str, dict[str, float]]:
    engine, other = open_engine(url), open_engine(url)
    try:
        await upgrade(engine, url)
        store, writer = DatabaseDefinitionStore(engine), DatabaseDefinitionStore(other)
        await store.save(WORKFLOW_ID, document(-1))
        save = await timed(saves, lambda i: store.save(WORKFLOW_ID, document(i)))
        load = await timed(loads, lambda _: store.get(WORKFLOW_ID))

        async def after_other_save(index: int) -> None:
            await writer.save(WORKFLOW_ID, document(saves + index))
            began = time.perf_counter()
            await store.get(WORKFLOW_ID)
            cold.append(time.perf_counter() - began)

        cold: list[float] = []
        await timed(min(saves, 100), after_other_save)
        return {
            "save": percentiles(save),
            "load": percentiles(load),
            "load_after_other_save": percentiles(cold),
        }
    finally:
        await engine.dispose()
        await other.dispose()


def measure_files(module_path: Path, directory: Path, saves: int, loads: int) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("old_store", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_store"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    store, other = module.FileDefinitionStore(directory), module.FileDefinitionStore(directory)
    store.save(WORKFLOW_ID, document(-1))

    def run(count: int, work: Callable[[int], Any]) -> list[float]:
        samples = []
        for index in range(count):
            began = time.perf_counter()
            work(index)
            samples.append(time.perf_counter() - began)
        return samples

    save = run(saves, lambda i: store.save(WORKFLOW_ID, document(i)))
    load = run(loads, lambda _: store.get(WORKFLOW_ID))
    cold = []
    for index in range(min(saves, 100)):
        other.save(WORKFLOW_ID, document(saves + index))
        began = time.perf_counter()
        store.get(WORKFLOW_ID)
        cold.append(time.perf_counter() - began)
    return {
        "save": percentiles(save),
        "load": percentiles(load),
        "load_after_other_save": percentiles(cold),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=200)
    parser.add_argument("--loads", type=int, default=2000)
    parser.add_argument("--files-store", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.files_store is not None:
            results["files"] = measure_files(
                args.files_store, root / "definitions", args.saves, args.loads
            )
        sqlite = f"sqlite:///{root / 'bench.db'}"
        results["sqlite"] = asyncio.run(measure_database(sqlite, args.saves, args.loads))
        from tests.postgres import PostgresServer, postgres_bin

        bin_dir = postgres_bin()
        if bin_dir is not None:
            server = PostgresServer(bin_dir).start()
            try:
                results["postgresql"] = asyncio.run(
                    measure_database(server.url(), args.saves, args.loads)
                )
            finally:
                server.stop()
    print(f"{'store':<12}{'operation':<24}{'p50 ms':>10}{'p99 ms':>10}")
    for store, operations in results.items():
        for operation, figures in operations.items():
            print(f"{store:<12}{operation:<24}{figures['p50_ms']:>10.3f}{figures['p99_ms']:>10.3f}")


if __name__ == "__main__":
    main()
