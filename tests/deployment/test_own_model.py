"""docs/own-model.md step 5 for real: the walk-through's my_app.py on an insecure
flower-superlink with two flower-supernode processes, each on its own data folder.

Every process binds 127.0.0.1 on a free port (the page's fixed ports, replaced), every wait is
bounded, and every process the test started is stopped by pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.colearn_fl.test_own_model_docs import page_files
from tests.deployment.federation import START_TIMEOUT, free_port, pids_with_env, start, stop
from tests.deployment.federation import wait_for as wait_for_log

pytestmark = [pytest.mark.deployment, pytest.mark.slow]
BIN = Path(sys.executable).parent
RUN_TIMEOUT = 300


@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_the_walk_through_app_colearns_across_two_supernodes(tmp_path: Path) -> None:
    # Prepare: the page's files and data; its config.toml connection, on free ports
    app = tmp_path / "my-app"
    app.mkdir()
    for name, body in page_files().items():
        (app / name).write_text(body)
    home = tmp_path / "flwr-home"
    home.mkdir()
    link = free_port()
    (home / "config.toml").write_text(
        f'[superlink.local-dc]\naddress = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home),
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    subprocess.run([sys.executable, "make_data.py"], cwd=app, env=env, check=True, timeout=60)
    processes: list[subprocess.Popen] = []
    try:
        # (logs in the app folder: processes start there, as the page's shell does, so the
        # run's relative output-dir lands in my-app/outputs)
        superlink = start(env, app / "superlink.log", [
            str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
            "--port", str(link)])
        processes.append(superlink)
        wait_for_log(app / "superlink.log", "Uvicorn running on", superlink,
                     START_TIMEOUT)
        for site in ("site-a", "site-b"):
            node = start(env, app / f"{site}.log", [
                str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                "--host", "127.0.0.1", "--port", str(free_port()),
                "--node-config", f"data-dir='{app / 'data' / site}'"])
            processes.append(node)
            wait_for_log(app / f"{site}.log", "SuperNode ID:", node, START_TIMEOUT)

        # Execute: the page's flwr run, to that SuperLink
        done = subprocess.run(
            [str(BIN / "flwr"), "run", ".", "local-dc", "--stream", "--run-config",
             f"run-name='deployed' data-dir='{app / 'data' / 'all'}'"],
            cwd=app, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    finally:
        left = stop(processes, pids_with_env("FLWR_HOME", str(home)))
    # Assert: both sites trained on all of their own folder (900 of its 1,000 points: 10 %
    # validate); the model learned
    output = done.stdout + done.stderr
    path = app / "outputs" / "deployed" / "history.json"
    assert path.exists(), output[-3000:]
    history = json.loads(path.read_text())
    assert history["status"] == "completed", output[-3000:]
    rows = history["rounds"]
    assert [s["train-examples"] for s in rows[0]["site-data"]] == [900, 900]
    assert all(r["sites-averaged"] == 2 for r in rows[1:])
    assert rows[-1]["central-accuracy"] > rows[0]["central-accuracy"] + 0.3
    assert not left, f"processes outlived the test: {left}"
