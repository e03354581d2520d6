"""A simulation on a Ray cluster someone else runs: ``ray start --head`` on 127.0.0.1.

docs/simulation-on-ray.md's recipe, for real: the head is started with Ray's own CLI, a
simulation attaches to it (``simulate(..., ray_address=...)``, and ``$RAY_ADDRESS`` as
``colearn compare --ray-address`` sets it), finishes, and leaves the cluster running with
none of its CPUs held. The head is stopped by its own process (``--block``), never with
``ray stop``, which would end every Ray instance on the machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from colearn_fl.simulation import ray_cluster, simulate
from tests.tiny import TinyClassifier, TinyData

RAY = Path(sys.executable).with_name("ray")
CPUS = 2
START_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status(address: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(RAY), "status", "--address", address], capture_output=True,
                          text=True, timeout=60)


def _used_cpus(address: str) -> float | None:
    """CPUs the cluster has handed out (``ray status``'s usage line); None: no answer."""
    status = _status(address)
    match = re.search(r"([\d.]+)/([\d.]+) CPU", status.stdout)
    return float(match.group(1)) if status.returncode == 0 and match else None


@pytest.fixture
def ray_head(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A one-node Ray cluster on 127.0.0.1 (its address and temp dir), stopped afterwards."""
    port = _free_port()
    temp = Path(f"/tmp/ray-colearn-{os.getpid()}")  # short: Ray's socket paths are limited
    address = f"127.0.0.1:{port}"
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", f"--num-cpus={CPUS}", "--num-gpus=0", "--include-dashboard=false",
         "--disable-usage-stats", f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_ADDRESS": ""})
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while _used_cpus(address) is None:
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, f"no Ray head at {address} after {START_TIMEOUT} s"
            time.sleep(1.0)
        yield address, temp
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # --block: the head stops its own processes
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)


def test_ray_address_defaults_to_a_private_instance(monkeypatch) -> None:
    # Prepare
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # Execute / Assert: Ray's own default would join `ray start`'s cluster
    assert ray_cluster() == "local"
    assert ray_cluster("127.0.0.1:6379") == "127.0.0.1:6379"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:7000")
    assert ray_cluster() == "127.0.0.1:7000"
    assert ray_cluster("auto") == "auto"


@pytest.mark.slow
def test_a_simulation_attaches_to_a_running_cluster_and_leaves_it_clean(
        ray_head, tmp_path, monkeypatch) -> None:
    # Prepare
    address, temp = ray_head
    monkeypatch.setenv("RAY_ADDRESS", address)  # as `colearn compare --ray-address` sets it
    run = {"num-server-rounds": 1, "epochs-initial": 1, "output-dir": str(tmp_path),
           "run-name": "on-ray", "logger": "none"}
    # Execute
    folder = simulate(run, num_sites=3, cpus_per_site=1, module_fn=lambda cfg: TinyClassifier(),
                      datamodule_fn=lambda context: TinyData(),
                      central_datamodule_fn=lambda cfg: TinyData())
    # Assert: the run finished on that cluster ...
    rows = json.loads((folder / "history.json").read_text())["rounds"]
    assert rows[-1]["round"] == 1 and rows[-1]["sites-averaged"] == 3
    drivers = list(temp.glob(f"session_*/logs/python-core-driver-*_{os.getpid()}.log"))
    assert drivers, f"this process never connected to the cluster in {temp}"
    # ... which still runs, with every CPU free again once the driver has gone
    deadline = time.monotonic() + 30.0
    while _used_cpus(address) != 0.0 and time.monotonic() < deadline:
        time.sleep(1.0)
    status = _status(address)
    assert status.returncode == 0, status.stderr[-2000:]
    assert f"0.0/{float(CPUS)} CPU" in status.stdout, status.stdout
