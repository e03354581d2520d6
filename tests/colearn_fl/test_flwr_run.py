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
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLWR = Path(sys.executable).with_name("flwr")


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
    assert ("[colearn] round 1/1 | epochs 4 | lr cosine 0.05->0.0005 | sites: 2 sent, 0 failed, "
            "0 dropped, 2 averaged") in output
    rows = json.loads((tmp_path / "cli" / "history.json").read_text())["rounds"]
    assert rows[-1]["round"] == 1 and rows[-1]["sites-averaged"] == 2
    assert rows[-1]["central-accuracy"] > rows[0]["central-accuracy"]


def _flwr_run(env: dict[str, str], cwd: Path, run_config: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(FLWR), "run", str(REPO), "--stream",
         "--federation-config", "num-supernodes=2 client-resources-num-cpus=1",
         "--run-config", run_config],
        env=env, capture_output=True, text=True, timeout=420, cwd=cwd)


# What flwr itself prints after a ServerApp failed (its exit-code notice, the log stream)
FLOWER_EPILOGUE = ("Exit Code:", "An unhandled exception occurred", "ref-exit-codes",
                   "Starting logstream")


def _last_line(done: subprocess.CompletedProcess) -> str:
    """The stream's last line before flwr's own closing notice."""
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()
             and not any(part in line for part in FLOWER_EPILOGUE)]
    return lines[-1] if lines else ""


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_a_failed_run_ends_the_stream_with_one_failed_line(tmp_path, flwr_home: Path) -> None:
    # Prepare: a finished run folder, and the managed SuperLink the first flwr run starts
    env = {**os.environ, "FLWR_HOME": str(flwr_home),
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "history.json").write_text('{"status": "completed", "rounds": []}\n')
    before = (tmp_path / "done" / "history.json").read_bytes()
    # Execute: the same run-name again; then a data-dir that does not exist
    started = time.monotonic()
    reused = _flwr_run(env, tmp_path, f"output-dir='{tmp_path}' run-name='done'")
    missing = _flwr_run(env, tmp_path, f"output-dir='{tmp_path}' run-name='m' "
                                       f"data-dir='{tmp_path / 'nowhere'}'")
    # Assert: flwr's own exit status is 0; the last line (before flwr's exit-code notice)
    # says FAILED and why, with no traceback and no Ray warning; both stop before any
    # training, and the earlier run is untouched
    assert reused.returncode == 0 and missing.returncode == 0
    assert _last_line(reused).endswith(
        "[colearn] FAILED: run-name='done': " f"{tmp_path / 'done'} already holds a run "
        "(history.json). Set resume=true to continue it, overwrite=true to replace it, or "
        "choose another run-name.")
    assert "[colearn] FAILED: data-dir=" in _last_line(missing)
    assert "does not exist on the server" in _last_line(missing)
    everything = reused.stdout + reused.stderr + missing.stdout + missing.stderr
    assert "Traceback" not in everything and "FutureWarning" not in everything
    assert "round 1/" not in reused.stdout + missing.stdout
    assert (tmp_path / "done" / "history.json").read_bytes() == before
    assert time.monotonic() - started < 300
