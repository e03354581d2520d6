"""A resumed run with a server optimizer continues its momentum: resuming FedAvgM after round
2 gives the same round 3 as the uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from flwr.app import Context

from colearn_fl.server.checkpoint import CHECKPOINT_NAME, load_checkpoint
from colearn_fl.simulation import simulate
from tests.tiny import TinyClassifier, TinyData

# optimizer-state='reset': a new simulation starts its sites' optimizers afresh; this test is
# about the server optimizer's state, which the checkpoint carries
FEDAVGM = {"server-optimizer": "fedavgm", "server-lr": 1.0, "server-momentum": 0.9,
           "epochs-schedule": "fixed", "epochs-initial": 1, "seed": 3,
           "optimizer-state": "reset"}


def site_data(context: Context) -> TinyData:
    return TinyData(n=64, seed=int(context.node_config["partition-id"]))


def run(folder, **run_config) -> dict:
    simulate({"output-dir": str(folder), **FEDAVGM, **run_config}, num_sites=2,
             module_fn=lambda _: TinyClassifier(), datamodule_fn=site_data,
             central_datamodule_fn=lambda _: TinyData())
    return load_checkpoint(folder / run_config["run-name"] / CHECKPOINT_NAME)


@pytest.mark.slow  # three simulated runs
def test_a_resumed_fedavgm_run_equals_the_uninterrupted_one(tmp_path) -> None:
    # Execute: 3 rounds at once; 2 rounds, then resumed to 3
    whole = run(tmp_path, **{"run-name": "whole", "num-server-rounds": 3})
    run(tmp_path, **{"run-name": "split", "num-server-rounds": 2})
    resumed = run(tmp_path, **{"run-name": "split", "num-server-rounds": 3, "resume": True})
    # Assert: the same global model after round 3, and the momentum kept in the checkpoint
    assert resumed["round"] == whole["round"] == 3
    for key, value in whole["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    assert "momentum_vector" in whole["server-optimizer-state"]
