"""Find and stop the background processes ``flwr run`` leaves behind.

``flwr run`` starts a managed local SuperLink (and its SuperExec) that outlives the command.
Tests, benchmarks and scripts that point ``FLWR_HOME`` at a folder of their own use
``stop_flwr_home`` to stop exactly the processes that folder's runs started.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def pids_mentioning(text: str) -> list[int]:
    """Pids of the processes whose command line contains ``text`` (Linux ``/proc``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


def stop_flwr_home(flwr_home: str | Path) -> list[int]:
    """SIGTERM the SuperLink started with state under ``flwr_home`` and its SuperExec."""
    stopped = []
    for pid in pids_mentioning(str(flwr_home)):
        for child in pids_mentioning(f"--parent-pid {pid}"):
            stopped.append(child)
        stopped.append(pid)
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return stopped
