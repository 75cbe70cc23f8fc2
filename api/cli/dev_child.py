"""``python -m api.cli.dev_child PARENT_PID MODULE [ARGS...]``: ``python -m MODULE ARGS`` that
ends when PARENT_PID stops being its parent.

`wfe dev` starts the worker and the API through this where the kernel cannot tie them to its
life (api.cli.devstack.die_with_parent: not Linux, e.g. macOS), so a SIGKILLed or crashed `wfe dev`
still takes them along within a second and frees their ports. It covers only these Python
children: the Temporal server is a Go binary that cannot run this watch, so there it outlives
a SIGKILLed `wfe dev` (an orderly stop - Ctrl-C, SIGTERM, SIGHUP - still ends it).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

POLL_SECONDS = 0.5


def watch_parent(parent: int, interval: float = POLL_SECONDS) -> None:
    """Return never: SIGKILL this process once ``parent`` is gone (we were re-parented).

    SIGKILL like the parent-death signal on Linux: with the parent gone nobody would escalate
    a slow graceful shutdown, and the point is that the ports are free."""
    while os.getppid() == parent:
        time.sleep(interval)
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> None:
    parent, module, *args = argv
    # A daemon thread: it must not keep the process alive when the module ends on its own.
    threading.Thread(
        target=watch_parent, args=(int(parent),), name="parent-watch", daemon=True
    ).start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
