"""Secure aggregation through real processes: a TLS SuperLink with SuperNode authentication
and three SuperNodes run SecAgg+ rounds to the end, and a round completes when a SuperNode is
SIGKILLed after it shared its keys (docs/privacy.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.deployment.federation import (
    CONNECTION,
    NEEDS_FASHION_MNIST,
    SITES,
    StartFederation,
    wait_until,
)

pytestmark = [
    pytest.mark.deployment,
    pytest.mark.slow,
    NEEDS_FASHION_MNIST,
]

REPO = Path(__file__).resolve().parents[2]
# Each of a round's four exchanges starts a ClientApp process per site (plus the data check):
# a secure round took about 8 minutes on 2 busy cores.
RUN_TIMEOUT = 900
RECEIVED = "Received successfully"  # a SuperNode's log line for every message it receives


def _run_config(out: Path, name: str, keys: str) -> str:
    return (f"secure-aggregation=true {keys} max-samples=300 batch-size=32 "
            f"fraction-evaluate=0.0 output-dir='{out}' run-name='{name}'")


def _history(out: Path, name: str) -> dict:
    return json.loads((out / name / "history.json").read_text())


@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_three_supernodes_aggregate_securely(make_federation: StartFederation) -> None:
    # Prepare
    fed = make_federation({f"site-{i}": "" for i in range(SITES)})
    out = fed.tmp / "out"
    # Execute: one round, every site
    done = fed.flwr(["run", str(REPO), CONNECTION, "--stream", "--run-config", _run_config(
        out, "secure", f"num-server-rounds=1 min-available-nodes={SITES}")],
        timeout=RUN_TIMEOUT)
    # Assert: every site in the sum, the protocol's traffic recorded, and a model that learned
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "secure aggregation (SecAgg+)" in output
    history = _history(out, "secure")
    rows = history["rounds"]
    assert history["status"] == "completed"
    assert rows[1]["sites-averaged"] == SITES and rows[1]["bytes-secagg-received"] > 0
    assert rows[1]["central-accuracy"] > rows[0]["central-accuracy"]


@pytest.mark.timeout(RUN_TIMEOUT + 180)
def test_a_supernode_killed_after_sharing_its_keys_is_left_out(
        make_federation: StartFederation) -> None:
    # Prepare: three sites; the threshold (a majority of 3) is 2
    fed = make_federation({f"site-{i}": "" for i in range(SITES)})
    out = fed.tmp / "out"
    run = fed.flwr_background(["run", str(REPO), CONNECTION, "--stream", "--run-config",
                               _run_config(out, "drop", f"num-server-rounds=1 "
                                           f"min-available-nodes={SITES}")],
                              fed.tmp / "flwr-run.log")
    # Execute: site-2 has received the data check, setup, share-keys and now the training
    # message: it shared its keys. It dies before it sends its masked model.
    log = fed.node_log("site-2")
    wait_until(lambda: log.read_text(errors="replace").count(RECEIVED) >= 4, run, RUN_TIMEOUT,
               "site-2 receiving its training message")
    fed.kill_node("site-2")
    wait_until(lambda: run.poll() is not None, None, RUN_TIMEOUT, "the run's end")
    # Assert: the round averaged the two other sites (site-2's masks removed with its shares)
    output = (fed.tmp / "flwr-run.log").read_text(errors="replace")
    assert run.returncode == 0, output[-3000:]
    history = _history(out, "drop")
    assert history["status"] == "completed"
    row = history["rounds"][1]
    assert (row["sites-sent"], row["sites-failed"], row["sites-averaged"]) == (SITES, 1, SITES - 1)
