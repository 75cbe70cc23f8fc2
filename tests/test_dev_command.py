"""The README's first command: `wfe dev` (what `make dev` runs) starts Temporal, the worker
and the API, creates and prints an admin key, runs the offline tour, and Ctrl-C stops all.
However `wfe dev` ends - Ctrl-C, a closing terminal, SIGKILL - nothing it started outlives it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.cli.devstack import DevServer, free_port, poll_limits, port_in_use
from api.server.auth import new_admin_key_file

ROOT = Path(__file__).resolve().parent.parent
PORT_FLAGS = {"api": "--api-port", "temporal": "--temporal-port", "ui": "--ui-port",
              "metrics": "--metrics-port"}  # fmt: skip
# Variables of the caller's shell that would change what `wfe dev` does or where `wfe` goes;
# the MAKE* ones are set when the suite itself runs under `make test`.
FOREIGN = ("API_KEYS", "API_KEYS_FILE", "AUTH_DISABLED", "HTTP_ALLOWED_HOSTS",
           "WORKER_METRICS_ADDRESS", "WFE_API_URL", "WFE_API_KEY", "MAKEFLAGS", "MAKELEVEL",
           "MFLAGS", "MAKEOVERRIDES")  # fmt: skip


def _wait_for(check: object, within: float) -> object:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            value = check()  # type: ignore[operator]
            if value:
                return value
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready within {within}s")


def _clean_env(pythonpath: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in FOREIGN} | {
        "PYTHONPATH": str(pythonpath)
    }


def _port_args(ports: dict[str, int]) -> list[str]:
    return [arg for name, port in ports.items() for arg in (PORT_FLAGS[name], str(port))]


def _banner(log: Path, within: float = 90) -> str:
    """The output of `wfe dev` once its banner is complete."""
    text = _wait_for(
        lambda: (lambda t: t if "Ctrl-C stops everything" in t else None)(
            log.read_text(errors="replace")
        ),
        within,
    )
    return str(text)


def _exports(banner: str) -> dict[str, str]:
    """The `export NAME=value` lines of the banner, as a user pastes them into a shell."""
    return dict(re.findall(r"^\s*export (WFE_\w+)=(\S+)\s*$", banner, re.MULTILINE))


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(child) for child in found.split()]


def _descendants(pid: int) -> list[int]:
    children = _children(pid)
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child its parent has not reaped yet holds nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _pgrep(pattern: str) -> str:
    """The processes whose command line matches ``pattern`` ("pid command" lines)."""
    found = subprocess.run(["pgrep", "-af", "--", pattern], capture_output=True, text=True)
    assert found.returncode in (0, 1), found.stderr  # 1: none; anything else: pgrep failed
    return found.stdout.strip()


def _listening(port: int, cwd: Path) -> bool:
    """Something started in ``cwd`` (where `wfe dev` and all it starts run) listens on
    ``port`` (the kernel's socket tables). A bind test would also fail on an outgoing
    connection of another program that drew this port as its ephemeral local port, which says
    nothing about what `wfe dev` left behind; so would a server of a test running beside this
    one (the suite runs on two workers) that was handed the port once it was free."""
    inodes = _listening_sockets(port)
    if not inodes:
        return False
    holders = _socket_holders(inodes)
    return not holders or any(_runs_in(pid, cwd) for pid in holders)


def _listening_sockets(port: int) -> set[str]:
    """The inodes of the sockets listening on ``port`` (the kernel's socket tables)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    return inodes


def _runs_in(pid: int, cwd: Path) -> bool:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).is_relative_to(cwd)
    except OSError:
        return True  # cannot tell: count it


def _listener_commands(port: int) -> dict[int, str]:
    """Who listens on ``port``: pid -> command line (for a failure's message)."""
    found = {}
    for pid in _socket_holders(_listening_sockets(port)):
        with contextlib.suppress(OSError):
            found[pid] = _command(pid)
    return found


def _socket_holders(inodes: set[str]) -> list[int]:
    """The processes holding a socket with one of ``inodes``."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in wanted for fd in (entry / "fd").iterdir()):
                holders.append(int(entry.name))
    return holders


def _kill_leftovers(pids: list[int]) -> None:
    """After a failed check: SIGKILL what is left, so one failure leaves no ports taken."""
    for pid in pids:
        if _running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _assert_all_gone(
    pids: list[int], ports: dict[str, int], cwd: Path, within: float = 5.0
) -> None:
    """Within ``within`` seconds: none of ``pids`` runs, nothing runs with one of the ports
    on its command line, and every port can be bound again."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.1)
    left = {pid: _command(pid) for pid in pids if _running(pid)}
    assert not left, f"still running {within}s later: {left}"
    for name, port in ports.items():
        # `wfe dev`'s (and make's) own flags match too; they are among the pids and gone.
        holders = _pgrep(f"{PORT_FLAGS[name]} {port}|--port {port}( |$)")
        assert holders == "", f"left behind on port {port}: {holders}"
        # A socket outlives its process by a moment while the kernel closes it.
        while time.monotonic() < deadline and _listening(port, cwd):
            time.sleep(0.1)
        assert not _listening(port, cwd), f"port {port} ({name}) still has a listener: " + str(
            _listener_commands(port)
        )


@pytest.mark.timeout(180)
def test_wfe_dev_runs_the_tour_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    ports = {name: free_port() for name in ("temporal", "ui", "api", "metrics")}
    wfe = Path(sys.executable).parent / "wfe"
    out = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [str(wfe), "dev", *_port_args(ports)],
        cwd=tmp_path, env=_clean_env(ROOT), stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = f"http://127.0.0.1:{ports['api']}"
    children: list[int] = []
    try:
        _wait_for(lambda: httpx.get(f"{api}/readyz", timeout=2).status_code == 200, 90)
        children = _descendants(dev.pid)
        key = json.loads((tmp_path / "storage" / "api-keys.json").read_text())[0]["key"]
        # The banner comes once the API answers; readiness may be seen a moment before it.
        printed = _wait_for(
            lambda: (lambda text: text if key in text else None)(
                (tmp_path / "dev.log").read_text(errors="replace")
            ),
            10,
        )
        assert f"http://127.0.0.1:{ports['ui']}" in str(printed)
        worker_metrics = f"http://127.0.0.1:{ports['metrics']}/metrics"
        assert worker_metrics in str(printed)
        # The examples are seeded into the embedded control-plane database.
        assert (tmp_path / "storage" / "wfe.db").exists()
        headers = {"Authorization": f"Bearer {key}"}
        started = httpx.post(
            f"{api}/api/workflows/run",
            json={"workflow_id": "hello-offline",
                  "input_vars": {"name": "Ada", "pause_seconds": 0}},
            headers=headers, timeout=10,
        )  # fmt: skip
        assert started.status_code == 202, started.text
        execution = f"{api}/api/executions/{started.json()['execution_id']}"
        _wait_for(
            lambda: httpx.get(execution, headers=headers).json()["current_step"] == "approval", 60
        )
        httpx.post(f"{execution}/signals/approval", json={"approved": True, "by": "me"},
                   headers=headers)  # fmt: skip
        done = _wait_for(
            lambda: (lambda b: b if b["status"] == "completed" else None)(
                httpx.get(execution, headers=headers).json()
            ),
            60,
        )
        assert done["outputs"]["outcome"] == "Hello Ada, the API answered 200. Approved by me."  # type: ignore[index]
        log = httpx.get(f"{execution}/log", headers=headers).json()
        assert log["status"] == "completed"
        # Metrics are on: the worker counted the tour's steps, the API its start.
        scraped = httpx.get(worker_metrics, timeout=5).text
        steps = [
            line
            for line in scraped.splitlines()
            if line.startswith("wfe_steps_total{") and 'workflow_id="hello-offline"' in line
        ]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in steps) == len(log["steps"])
        assert httpx.get(f"{api}/metrics", timeout=5).status_code == 401  # it takes a key
        api_metrics = httpx.get(f"{api}/metrics", headers=headers, timeout=5).text
        assert 'wfe_executions_started_total{trigger="api",workflow_id="hello-offline"} 1.0' in (
            api_metrics
        )  # fmt: skip
    finally:
        dev.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            dev.wait(40)
        finally:
            if dev.poll() is None:
                dev.kill()
            out.close()
    assert "stopped." in (tmp_path / "dev.log").read_text(errors="replace")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{api}/healthz", timeout=2)
    _assert_all_gone(children, ports, tmp_path)


@pytest.mark.timeout(240)
def test_make_dev_on_a_fresh_clone_takes_ports_and_a_closing_terminal_stops_all(
    tmp_path: Path,
) -> None:
    """`make dev ARGS=...` in a fresh clone (of the committed tree, reusing this environment:
    -o tells make the install is done) starts on the given ports; the banner's two export lines
    are all `wfe` needs; a closing terminal (SIGHUP to make's process group) stops everything."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=60)
    venv = Path(sys.executable).parent.parent
    ports = {name: free_port() for name in PORT_FLAGS}
    args = " ".join(_port_args(ports))
    log = tmp_path / "make-dev.log"
    with log.open("wb") as out:
        make = subprocess.Popen(
            ["make", "dev", f"VENV={venv}", "-o", f"{venv}/.installed", f"ARGS={args}"],
            cwd=clone, env=_clean_env(clone), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # make's own process group, as a terminal's job has
        )  # fmt: skip
    started: list[int] = []
    try:
        banner = _banner(log)
        started = _descendants(make.pid)
        exports = _exports(banner)
        assert exports["WFE_API_URL"] == f"http://127.0.0.1:{ports['api']}", banner
        assert exports["WFE_API_KEY"].startswith("wfe_"), banner
        listed = subprocess.run(
            [str(venv / "bin" / "wfe"), "workflows"], capture_output=True, text=True, timeout=60,
            env=_clean_env(clone) | exports,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "hello-offline" in listed.stdout
        commands = " | ".join(_command(pid) for pid in started)
        for part in ("wfe dev", "temporal server start-dev", "-m worker", "-m uvicorn"):
            assert part in commands
        os.killpg(make.pid, signal.SIGHUP)  # what a closing terminal sends its foreground job
        _assert_all_gone([make.pid, *started], ports, clone)
        assert "stopped." in log.read_text(errors="replace")
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
        make.wait(10)
        _kill_leftovers(started)


@pytest.mark.timeout(180)
def test_a_killed_wfe_dev_takes_everything_it_started_along(tmp_path: Path) -> None:
    """SIGKILL gives `wfe dev` no chance to stop anything: the kernel ends its children. A
    key from an earlier start is printed again, beside the API's URL."""
    key = new_admin_key_file(tmp_path / "storage" / "api-keys.json")
    ports = {name: free_port() for name in PORT_FLAGS}
    wfe = Path(sys.executable).parent / "wfe"
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [str(wfe), "dev", *_port_args(ports)],
            cwd=tmp_path, env=_clean_env(ROOT), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    started: list[int] = []
    try:
        banner = _banner(log)
        started = _descendants(dev.pid)
        assert _exports(banner) == {
            "WFE_API_URL": f"http://127.0.0.1:{ports['api']}",
            "WFE_API_KEY": key,
        }, banner
        commands = " | ".join(_command(pid) for pid in started)
        for part in ("temporal server start-dev", "-m worker", "-m uvicorn"):
            assert part in commands
        dev.kill()
        dev.wait(10)
        _assert_all_gone(started, ports, tmp_path)
    finally:
        if dev.poll() is None:
            dev.kill()
        dev.wait(10)
        _kill_leftovers(started)


@pytest.mark.timeout(60)
def test_where_the_kernel_cannot_the_python_children_watch_their_parent(tmp_path: Path) -> None:
    """The fallback for systems without Linux's parent-death signal: api.cli.dev_child runs a
    module (here a web server holding a port) that ends once its parent is gone."""
    port = free_port()
    # A parent that starts the child plainly (no parent-death signal), reports its pid, waits.
    parent_code = (
        "import os, subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-m', 'api.cli.dev_child', str(os.getpid()), "
        f"'http.server', '{port}', '--bind', '127.0.0.1'], stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL); print(child.pid, flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
        env=_clean_env(ROOT), cwd=tmp_path,
    )  # fmt: skip
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        _wait_for(lambda: port_in_use(port), 20)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _running(child):
            time.sleep(0.1)
        assert not _running(child), "the child outlived its parent"
        assert not _listening(port, tmp_path)
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(10)
        _kill_leftovers([child] if child else [])


@pytest.mark.parametrize("taken", ["temporal", "ui", "api", "metrics"])
def test_wfe_dev_refuses_a_taken_port_before_starting_anything(tmp_path: Path, taken: str) -> None:
    ports = {name: free_port() for name in ("temporal", "ui", "api", "metrics")}
    flags = {"temporal": "--temporal-port", "ui": "--ui-port", "api": "--api-port",
             "metrics": "--metrics-port"}  # fmt: skip
    wfe = Path(sys.executable).parent / "wfe"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[taken]))
        holder.listen()
        done = subprocess.run(
            [str(wfe), "dev", *(arg for name in ports for arg in (flags[name], str(ports[name])))],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={**{k: v for k, v in os.environ.items() if k != "WORKER_METRICS_ADDRESS"},
                 "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert f"port {ports[taken]}" in message and flags[taken] in message, done.stderr
    assert "already in use" in message
    assert "workflow engine running" not in done.stdout + done.stderr
    assert not (tmp_path / "storage").exists(), "nothing may be created before the check"
    assert _pgrep(f"--port {ports['temporal']} ") == ""


def test_wfe_dev_refuses_one_port_for_two_services(tmp_path: Path) -> None:
    port = str(free_port())
    wfe = Path(sys.executable).parent / "wfe"
    done = subprocess.run(
        [str(wfe), "dev", "--ui-port", port, "--api-port", port, "--temporal-port",
         str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 1
    assert f"both set to port {port}" in " ".join(done.stderr.split())


def test_every_dev_server_lifts_the_poll_limits_and_skips_fsync(tmp_path: Path) -> None:
    """wfe dev, the test fixture, bench/ and the chaos script all start Temporal through
    DevServer: the history poll limits are raised and SQLite runs WAL, synchronous=normal."""
    command = " ".join(DevServer(db_file=tmp_path / "t.db").command())
    for name, value in poll_limits().items():
        assert f"--dynamic-config-value {name}={value}" in command
    assert "--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal" in command
    in_memory = " ".join(DevServer().command())
    assert "--sqlite-pragma" not in in_memory and "history.transferProcessorMaxPollRPS" in in_memory
