"""docs/own-model.md, as a newcomer follows it: its files written out of the page, its data
made, its app run under ``flwr run`` simulation, its results read and its model loaded back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "own-model.md"
BIN = Path(sys.executable).parent


def page_files() -> dict[str, str]:
    """The page's fenced blocks whose first line names a file (``# my_app.py``)."""
    blocks = re.findall(r"```(?:python|toml)\n# ([\w.]+)\n(.*?)```", PAGE.read_text(), re.S)
    return {name: body for name, body in blocks}


def test_the_page_names_its_files() -> None:
    assert set(page_files()) == {"make_data.py", "my_app.py", "pyproject.toml", "results.py",
                                 "use_model.py"}


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_the_walk_through_runs_as_written(tmp_path: Path, flwr_home: Path) -> None:
    # Prepare: the files, as a newcomer saves them, and their data
    app = tmp_path / "my-app"
    app.mkdir()
    for name, body in page_files().items():
        (app / name).write_text(body)
    env = {**os.environ, "FLWR_HOME": str(flwr_home),
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    subprocess.run([sys.executable, "make_data.py"], cwd=app, env=env, check=True, timeout=60)

    # Execute: step 4's simulation (2 sites rather than 4, for time), then steps 6 and 7
    done = subprocess.run(
        [str(BIN / "flwr"), "run", ".", "--stream",
         "--federation-config", "num-supernodes=2 client-resources-num-cpus=1",
         "--run-config", "run-name='sim'"],
        cwd=app, env=env, capture_output=True, text=True, timeout=420)
    output = done.stdout + done.stderr
    results = subprocess.run([sys.executable, "results.py"], cwd=app, env=env, check=True,
                             capture_output=True, text=True, timeout=60)
    model = subprocess.run([sys.executable, "use_model.py"], cwd=app, env=env, check=True,
                           capture_output=True, text=True, timeout=60)

    # Assert: the cycle came from the module's Adam, the run completed and learned
    assert "[colearn] lr-max 0.001 from MyModel's Adam; lr-min 1e-05" in output, output[-3000:]
    history = json.loads((app / "outputs" / "sim" / "history.json").read_text())
    assert history["status"] == "completed"
    rows = history["rounds"]
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert rows[-1]["central-accuracy"] > rows[0]["central-accuracy"] + 0.3
    assert len(results.stdout.splitlines()) == 4
    # use_model.py tests the best round's model again: its recorded central accuracy
    accuracy = float(model.stdout.split()[-1])
    assert accuracy == pytest.approx(max(r["central-accuracy"] for r in rows[1:]), abs=1e-4)
