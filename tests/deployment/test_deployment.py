"""docs/deployment.md for real: flower-superlink + 3 flower-supernode processes, TLS and auth.

Every process binds 127.0.0.1 on a free port, every wait is bounded, and the fixtures
(``conftest.py``, ``federation.py``) stop every process they started (and their SuperExec /
app children) by pid.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.deployment.federation import (
    CONNECTION,
    NEEDS_FASHION_MNIST,
    SHARD_SAMPLES,
    SITES,
    Federation,
    start,
    stop,
)

pytestmark = [
    pytest.mark.deployment,
    NEEDS_FASHION_MNIST,
]

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 240


@pytest.mark.slow  # CI runs it on every landing; the default suite keeps test_flwr_run's run
@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_flwr_run_colearns_across_three_supernodes(federation: Federation) -> None:
    # Prepare: sites read only their 300-image shards; the server evaluates 500 test images.
    # fraction-evaluate=0: every federated evaluation starts one more ClientApp process per
    # site, which is most of a tiny round's cost; central evaluation is what the test checks.
    out = federation.tmp / "out"
    run_config = (f"num-server-rounds=2 min-available-nodes={SITES} max-samples=500 "
                  f"batch-size=32 fraction-evaluate=0.0 output-dir='{out}' run-name='dep'")
    # Execute
    done = federation.flwr(["run", str(REPO), CONNECTION, "--stream", "--run-config", run_config],
                           timeout=RUN_TIMEOUT)
    # Assert
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    rows = json.loads((out / "dep" / "history.json").read_text())["rounds"]
    assert [row["round"] for row in rows] == [0, 1, 2]
    assert all(row["sites-averaged"] == SITES for row in rows[1:])
    assert rows[2]["central-accuracy"] > rows[0]["central-accuracy"]


@pytest.mark.slow  # CI runs it on every landing (README: the deployment checks)
@pytest.mark.timeout(RUN_TIMEOUT + 120)
def test_central_dp_across_three_supernodes(federation: Federation) -> None:
    # Execute: one round under central DP (client-side clipping at each real SuperNode, noise
    # at the server); a tiny noise and a wide clip, so the model still learns
    out = federation.tmp / "out"
    run_config = (f"num-server-rounds=1 min-available-nodes={SITES} max-samples=500 "
                  f"batch-size=32 fraction-evaluate=0.0 output-dir='{out}' run-name='dp' "
                  "dp-noise-multiplier=0.0001 dp-clipping-norm=1000.0")
    done = federation.flwr(["run", str(REPO), CONNECTION, "--stream", "--run-config", run_config],
                           timeout=RUN_TIMEOUT)
    # Assert: Flower's DP wrapper added its noise to an average of every site's clipped update
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "central DP noise with" in output, output[-3000:]
    history = json.loads((out / "dp" / "history.json").read_text())
    assert history["status"] == "completed"
    assert history["rounds"][1]["sites-averaged"] == SITES
    assert history["rounds"][1]["central-accuracy"] > history["rounds"][0]["central-accuracy"]


@pytest.mark.timeout(120)
def test_unregistered_supernode_is_refused(federation: Federation) -> None:
    # Prepare: a key pair the SuperLink was never told about
    log = federation.tmp / "intruder.log"
    args = federation.supernode_args("intruder", federation.admin.shards[0])
    # Execute
    intruder = start(federation.env, log, args)
    try:
        returncode = intruder.wait(timeout=60)
    finally:
        stop([intruder])
    # Assert: flwr_exit(SUPERNODE_CONNECTION_ERROR) after the SuperLink answered 412
    output = log.read_text(errors="replace")
    assert returncode != 0, output
    assert "Exit Code: 305" in output and "Failed to activate SuperNode" in output, output
    superlink_log = federation.superlink_log.read_text(errors="replace")
    assert "No SuperNode found with the given public key" in superlink_log


@pytest.mark.slow  # CI runs it on every landing (README: the deployment checks)
@pytest.mark.timeout(RUN_TIMEOUT + 180)
def test_a_site_trains_on_two_devices_with_ddp(make_federation) -> None:
    # Prepare: site-0 says in its node config that it trains on 2 devices (CPU processes,
    # gloo); site-1 on one. The same shard size at both.
    fed = make_federation({"site-0": "devices=2 accelerator='cpu'", "site-1": ""})
    out = fed.tmp / "out"
    run_config = (f"num-server-rounds=1 min-available-nodes=2 max-samples=500 batch-size=32 "
                  "epochs-schedule='fixed' epochs-initial=1 fraction-evaluate=0.0 "
                  f"output-dir='{out}' run-name='ddp'")
    # Execute
    done = fed.flwr(["run", str(REPO), CONNECTION, "--stream", "--run-config", run_config],
                    timeout=RUN_TIMEOUT)
    # Assert: both sites averaged; the two-device site reports its whole shard (both workers'
    # examples) and the round's epoch, like the one-device site; its ClientApp ran 2 workers
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    history = json.loads((out / "ddp" / "history.json").read_text())
    assert history["status"] == "completed", history
    row = history["rounds"][1]
    assert row["sites-averaged"] == 2 and row["sites-following"] == 2
    assert [s["num-examples"] for s in row["site-reports"]] == [SHARD_SAMPLES, SHARD_SAMPLES]
    assert [s["epochs-run"] for s in row["site-reports"]] == [1, 1]
    assert row["central-accuracy"] > history["rounds"][0]["central-accuracy"]
    site_log = fed.node_log("site-0").read_text(errors="replace")
    assert "MEMBER: 2/2" in site_log and "distributed_backend=gloo" in site_log, site_log[-3000:]
