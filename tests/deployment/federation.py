"""Real Flower processes for the deployment tests: one SuperLink, SuperNodes, ``flwr``.

``Federation`` runs the commands of docs/deployment.md on 127.0.0.1: a TLS SuperLink with
SuperNode authentication and a SQLite state, registered SuperNodes on their own shards, and
``flwr`` with its own ``FLWR_HOME``. Every wait is bounded, and ``stop`` ends every process
the federation started (and their SuperExec / app children) by pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.image.fashion_mnist import DEFAULT_DATA_DIR, split_available

BIN = Path(sys.executable).parent
CONNECTION = "dc"
START_TIMEOUT = 60.0
STOP_GRACE = 15.0
SITES = 3
SHARD_SAMPLES = 300  # images per site and split: a round costs process start-up, not compute


@dataclass(frozen=True)
class AdminFiles:
    """What the admin makes once (docs/deployment.md steps 1-2)."""

    certs: dict[str, Path]
    keys: dict[str, tuple[Path, Path]]
    shards: list[Path]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(log: Path, text: str, process: subprocess.Popen | None, timeout: float,
             after: int = 0) -> int:
    """Wait until ``text`` appears in ``log`` (from byte ``after`` on); return where it ends.

    Fails the test if ``process`` exits first or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_bytes()[after:].decode(errors="replace") if log.exists() else ""
        if text in content:
            return after + len(content[:content.index(text) + len(text)].encode())
        if process is not None and process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited ({process.returncode}):\n{content[-2000:]}")
        time.sleep(0.3)
    pytest.fail(f"no {text!r} in {log} after {timeout} s")


def wait_until(condition: Callable[[], object], process: subprocess.Popen | None,
               timeout: float, what: str) -> None:
    """Poll ``condition`` until it is truthy; fail if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.2)


def start(env: dict[str, str], log: Path, args: list[str]) -> subprocess.Popen:
    with log.open("ab") as handle:
        return subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                cwd=log.parent)


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pids: list[int]) -> list[int]:
    """``pids`` and every process below them (Linux ``/proc``)."""
    parents = _parents()
    found, frontier = list(pids), list(pids)
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pids_with_env(key: str, value: str) -> list[int]:
    """Live processes whose environment has ``key=value`` (every process a federation starts
    inherits its ``FLWR_HOME``, however far down the tree or orphaned)."""
    wanted = f"{key}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if wanted in environ.split(b"\0") and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop(processes: list[subprocess.Popen], orphans: list[int] | None = None) -> list[int]:
    """SIGTERM processes, their descendants and ``orphans``; SIGKILL stragglers.

    Returns the pids still alive afterwards (none, unless something is badly wrong).
    """
    pids = descendants([p.pid for p in processes if p.poll() is None])
    pids += [pid for pid in descendants(list(orphans or [])) if alive(pid)]
    for pid in pids:
        _signal(pid, signal.SIGCONT)  # a stopped process would hold its SIGTERM
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        for process in processes:
            process.poll()  # reap our direct children
        time.sleep(0.2)
    for pid in pids:
        if alive(pid):
            _signal(pid, signal.SIGKILL)
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    return [pid for pid in pids if alive(pid)]


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Federation:
    """A SuperLink, its SuperNodes and a ``flwr`` connection, all under ``tmp``.

    Parameters
    ----------
    tmp : Path
        This federation's folder: state database, logs, ``FLWR_HOME``, results.
    admin : AdminFiles
        Certificates, SuperNode keys and site shards.
    """

    def __init__(self, tmp: Path, admin: AdminFiles) -> None:
        self.tmp, self.admin, self.port = tmp, admin, free_port()
        home = tmp / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "127.0.0.1:{self.port}"\n'
            f'root-certificates = "{admin.certs["ca.crt"]}"\n')
        self.env = {**os.environ, "FLWR_HOME": str(home),
                    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
        self.superlink: subprocess.Popen | None = None
        self.nodes: dict[str, subprocess.Popen] = {}
        self.others: list[subprocess.Popen] = []  # flwr run, intruders, ...
        self.orphans: list[int] = []  # children of killed SuperNodes

    @property
    def superlink_log(self) -> Path:
        return self.tmp / "superlink.log"

    def node_log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def start_superlink(self) -> None:
        """docs/deployment.md step 3, on this federation's database and port."""
        certs = self.admin.certs
        after = self.superlink_log.stat().st_size if self.superlink_log.exists() else 0
        self.superlink = start(self.env, self.superlink_log, [
            str(BIN / "flower-superlink"), "--ssl-ca-certfile", str(certs["ca.crt"]),
            "--ssl-certfile", str(certs["server.pem"]), "--ssl-keyfile", str(certs["server.key"]),
            "--database", str(self.tmp / "state.db"), "--enable-supernode-auth",
            "--host", "127.0.0.1", "--port", str(self.port)])
        wait_for(self.superlink_log, "Uvicorn running on https://127.0.0.1", self.superlink,
                 START_TIMEOUT, after)

    def stop_superlink(self) -> None:
        """Stop the SuperLink, its SuperExec and the ServerApp it runs (SIGTERM)."""
        assert self.superlink is not None
        left = stop([self.superlink])
        assert not left, f"SuperLink processes outlived SIGTERM and SIGKILL: {left}"
        self.superlink = None

    def register(self, names: list[str]) -> None:
        """docs/deployment.md step 4: ``flwr supernode register`` each site's public key."""
        for name in names:
            done = self.flwr(["supernode", "register", str(self.admin.keys[name][1]), CONNECTION],
                             timeout=60)
            assert done.returncode == 0 and "registered successfully" in done.stdout, (
                done.stdout + done.stderr)

    def supernode_args(self, name: str, data_dir: Path, node_config: str = "") -> list[str]:
        """docs/deployment.md step 5 for the site whose key is ``name``."""
        return [str(BIN / "flower-supernode"),
                "--root-certificates", str(self.admin.certs["ca.crt"]),
                "--superlink", f"127.0.0.1:{self.port}",
                "--auth-supernode-private-key", str(self.admin.keys[name][0]),
                "--host", "127.0.0.1", "--port", str(free_port()),
                "--node-config", f"data-dir='{data_dir}' {node_config}".strip()]

    def start_nodes(self, node_configs: dict[str, str]) -> None:
        """Start one SuperNode per ``site-<i>`` name (with extra node config), wait for all."""
        for name, extra in node_configs.items():
            shard = self.admin.shards[int(name.removeprefix("site-"))]
            self.nodes[name] = start(self.env, self.node_log(name),
                                     self.supernode_args(name, shard, extra))
        for name, node in self.nodes.items():
            wait_for(self.node_log(name), "SuperNode ID:", node, START_TIMEOUT)

    def kill_node(self, name: str) -> None:
        """SIGKILL the SuperNode ``name`` (no goodbye to the SuperLink), as a crash would.

        Its SuperExec and ClientApp processes are left to Flower's parent-process monitors;
        ``stop`` ends any that survive.
        """
        node = self.nodes.pop(name)
        self.orphans += [pid for pid in descendants([node.pid]) if pid != node.pid]
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=10)

    def app_processes(self, name: str) -> list[int]:
        """Pids of the ``flwr-clientapp`` processes the SuperNode ``name`` runs now."""
        return [pid for pid in descendants([self.nodes[name].pid])
                if "flwr-clientapp" in command_line(pid) and alive(pid)]

    def flwr(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        """Run ``flwr ARGS`` with this federation's ``FLWR_HOME`` and wait for it."""
        return subprocess.run([str(BIN / "flwr"), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, cwd=self.tmp)

    def flwr_background(self, args: list[str], log: Path) -> subprocess.Popen:
        """Start ``flwr ARGS`` without waiting; its output goes to ``log``."""
        process = start(self.env, log, [str(BIN / "flwr"), *args])
        self.others.append(process)
        return process

    def running(self) -> list[int]:
        """Pids of the live processes started with this federation's ``FLWR_HOME``."""
        return pids_with_env("FLWR_HOME", self.env["FLWR_HOME"])

    def stop(self) -> list[int]:
        """Stop every process this federation started; the pids that survived."""
        processes = [*self.others, *self.nodes.values()]
        if self.superlink is not None:
            processes.append(self.superlink)
        stop(processes, self.orphans + self.running())
        return self.running()


StartFederation = Callable[[dict[str, str]], Federation]  # the ``make_federation`` fixture


# Every deployment test federates the Fashion-MNIST files on this machine
NEEDS_FASHION_MNIST = pytest.mark.skipif(
    not split_available(DEFAULT_DATA_DIR, "train"),
    reason="needs Fashion-MNIST in /usr/share/datasets/fashion-mnist")
