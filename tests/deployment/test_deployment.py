"""docs/deployment.md for real: flower-superlink + 3 flower-supernode processes, TLS and auth.

Every process binds 127.0.0.1 on a free port, every wait is bounded, and the fixture stops
every process it started (and their SuperExec / app children) by pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from colearn_fl.deploy import make_certificates, make_node_keys, write_site_shards
from tasks.fashion_mnist import DEFAULT_DATA_DIR, split_available

pytestmark = [
    pytest.mark.deployment,
    pytest.mark.skipif(not split_available(DEFAULT_DATA_DIR, "train"),
                       reason="needs Fashion-MNIST in /usr/share/datasets/fashion-mnist"),
]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SITES = 3
CONNECTION = "dc"
START_TIMEOUT = 60.0
RUN_TIMEOUT = 240


@dataclass
class Federation:
    """The running deployment: its files, ports and processes."""

    tmp: Path
    env: dict[str, str]
    certs: dict[str, Path]
    keys: dict[str, tuple[Path, Path]]
    shards: list[Path]
    port: int
    processes: list[subprocess.Popen]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    """Wait until ``text`` appears in ``log``; fail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited ({process.returncode}):\n{content[-2000:]}")
        time.sleep(0.3)
    pytest.fail(f"no {text!r} in {log} after {timeout} s")


def _start(fed_env: dict[str, str], log: Path, args: list[str]) -> subprocess.Popen:
    with log.open("wb") as handle:
        return subprocess.Popen(args, env=fed_env, stdout=handle, stderr=subprocess.STDOUT,
                                cwd=log.parent)


def _supernode_args(federation: Federation, key: Path, data_dir: Path) -> list[str]:
    return [str(BIN / "flower-supernode"),
            "--root-certificates", str(federation.certs["ca.crt"]),
            "--superlink", f"127.0.0.1:{federation.port}",
            "--auth-supernode-private-key", str(key),
            "--host", "127.0.0.1", "--port", str(_free_port()),
            "--node-config", f"data-dir='{data_dir}'"]


def _descendants(pids: list[int]) -> list[int]:
    """``pids`` and every process below them (Linux ``/proc``)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = list(pids), list(pids)
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _stop(processes: list[subprocess.Popen]) -> list[int]:
    """SIGTERM every process and its descendants, SIGKILL stragglers; the pids still alive."""
    pids = _descendants([p.pid for p in processes if p.poll() is None])
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        for process in processes:
            process.poll()  # reap our direct children
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    return [pid for pid in pids if _alive(pid)]


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> Iterator[Federation]:
    # Prepare: the admin's files (docs/deployment.md steps 1-2)
    tmp = tmp_path_factory.mktemp("deployment")
    certs = make_certificates(tmp / "certs")
    keys = make_node_keys(tmp / "keys", [f"site-{i}" for i in range(SITES)] + ["intruder"])
    shards = write_site_shards(DEFAULT_DATA_DIR, tmp / "shards", SITES, seed=0, max_samples=300)
    port = _free_port()
    home = tmp / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
        f'address = "127.0.0.1:{port}"\nroot-certificates = "{certs["ca.crt"]}"\n')
    env = {**os.environ, "FLWR_HOME": str(home),
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    fed = Federation(tmp, env, certs, keys, shards, port, [])
    try:
        # SuperLink: TLS, SQLite state, SuperNode auth, everything on 127.0.0.1:port
        superlink = _start(env, tmp / "superlink.log", [
            str(BIN / "flower-superlink"), "--ssl-ca-certfile", str(certs["ca.crt"]),
            "--ssl-certfile", str(certs["server.pem"]), "--ssl-keyfile", str(certs["server.key"]),
            "--database", str(tmp / "state.db"), "--enable-supernode-auth",
            "--host", "127.0.0.1", "--port", str(port)])
        fed.processes.append(superlink)
        _wait_for(tmp / "superlink.log", "Uvicorn running on https://127.0.0.1", superlink,
                  START_TIMEOUT)
        for i in range(SITES):
            done = subprocess.run(
                [str(BIN / "flwr"), "supernode", "register", str(keys[f"site-{i}"][1]),
                 CONNECTION], env=env, capture_output=True, text=True, timeout=60, cwd=tmp)
            assert done.returncode == 0 and "registered successfully" in done.stdout, (
                done.stdout + done.stderr)
        for i, shard in enumerate(shards):
            log = tmp / f"supernode-{i}.log"
            node = _start(env, log, _supernode_args(fed, keys[f"site-{i}"][0], shard))
            fed.processes.append(node)
            _wait_for(log, "SuperNode ID:", node, START_TIMEOUT)
        yield fed
    finally:
        left = _stop(fed.processes)
        assert not left, f"processes outlived the fixture: {left}"


@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_flwr_run_colearns_across_three_supernodes(federation: Federation) -> None:
    # Prepare: sites read only their 300-image shards; the server evaluates 500 test images.
    # fraction-evaluate=0: every federated evaluation starts one more ClientApp process per
    # site, which is most of a tiny round's cost; central evaluation is what the test checks.
    out = federation.tmp / "out"
    run_config = (f"num-server-rounds=2 min-available-nodes={SITES} max-samples=500 "
                  f"batch-size=32 fraction-evaluate=0.0 output-dir='{out}' run-name='dep'")
    # Execute
    done = subprocess.run(
        [str(BIN / "flwr"), "run", str(REPO), CONNECTION, "--stream", "--run-config", run_config],
        env=federation.env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
        cwd=federation.tmp)
    # Assert
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    rows = json.loads((out / "dep" / "history.json").read_text())["rounds"]
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert all(row["sites-averaged"] == SITES for row in rows[1:])
    assert rows[2]["central-accuracy"] > rows[0]["central-accuracy"]


@pytest.mark.timeout(120)
def test_unregistered_supernode_is_refused(federation: Federation) -> None:
    # Prepare: a key pair the SuperLink was never told about
    log = federation.tmp / "intruder.log"
    args = _supernode_args(federation, federation.keys["intruder"][0], federation.shards[0])
    # Execute
    intruder = _start(federation.env, log, args)
    try:
        returncode = intruder.wait(timeout=60)
    finally:
        _stop([intruder])
    # Assert: flwr_exit(SUPERNODE_CONNECTION_ERROR) after the SuperLink answered 412
    output = log.read_text(errors="replace")
    assert returncode != 0, output
    assert "Exit Code: 305" in output and "Failed to activate SuperNode" in output, output
    superlink_log = (federation.tmp / "superlink.log").read_text(errors="replace")
    assert "No SuperNode found with the given public key" in superlink_log
