"""README's run command, for real: ``flwr run . --stream`` against a managed local SuperLink.

``flwr run`` starts that SuperLink in the background and leaves it running; the test keeps
all of Flower's state in a temporary FLWR_HOME and stops every process it caused to start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from colearn_fl.cli import main
from colearn_fl.processes import pids_mentioning

REPO = Path(__file__).resolve().parents[2]
FLWR = Path(sys.executable).with_name("flwr")


@pytest.fixture
def flwr_home(tmp_path) -> Iterator[Path]:
    home = tmp_path / "flwr-home"
    yield home
    # The README's one precise command: only this FLWR_HOME's SuperLink and SuperExec
    assert main(["stop-superlink", "--flwr-home", str(home)]) == 0
    deadline = time.monotonic() + 15
    while pids_mentioning(str(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pids_mentioning(str(home)), "the managed SuperLink outlived the test"


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
    assert "[colearn] round 1/1 | epochs 4 | lr cosine 0.05->0.0005" in output
    rows = json.loads((tmp_path / "cli" / "history.json").read_text())["rounds"]
    assert rows[-1]["round"] == 1 and rows[-1]["sites-averaged"] == 2
    assert rows[-1]["central-accuracy"] > rows[0]["central-accuracy"]
