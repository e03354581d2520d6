"""README's run command, for real: ``flwr run . --stream`` against a managed local SuperLink.

``flwr run`` starts that SuperLink in the background and leaves it running; the test keeps
all of Flower's state in a temporary FLWR_HOME and stops every process it caused to start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLWR = Path(sys.executable).with_name("flwr")


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.fixture
def flwr_home(tmp_path) -> Iterator[Path]:
    home = tmp_path / "flwr-home"
    yield home
    for pid in processes_mentioning(str(home)):  # the managed SuperLink ...
        for child in processes_mentioning(f"--parent-pid {pid}"):  # ... and its SuperExec
            os.kill(child, signal.SIGTERM)
        os.kill(pid, signal.SIGTERM)


def test_flwr_run_streams_rounds_and_writes_results(tmp_path, flwr_home: Path) -> None:
    # Prepare
    env = {**os.environ, "FLWR_HOME": str(flwr_home),
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    run_config = f"max-samples=600 num-server-rounds=1 output-dir='{tmp_path}' run-name='cli'"
    # Execute
    done = subprocess.run(
        [str(FLWR), "run", str(REPO), "--stream",
         "--federation-config", "num-supernodes=2 client-resources-num-cpus=1",
         "--run-config", run_config],
        env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path,
    )
    # Assert
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "[colearn] round 1/1 | epochs 1 | lr cosine 0.05->0.0005" in output
    rows = json.loads((tmp_path / "cli" / "history.json").read_text())["rounds"]
    assert rows[-1]["round"] == 1 and rows[-1]["sites-averaged"] == 2
    assert rows[-1]["central-accuracy"] > rows[0]["central-accuracy"]
