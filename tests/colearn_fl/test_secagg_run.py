"""Secure aggregation with the rest of colearn-fl: under central DP (in one process), and in
a real simulated federation (Ray actors), where CoLearnSchedule over FedAvg runs its rounds on
SecAgg+ and ends where the plain run ends, to the quantisation error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Context
from flwr.serverapp.strategy import FedAvg

from colearn_fl.server.privacy import ClientSideFixedClipping
from colearn_fl.simulation import simulate
from colearn_fl.site.clipping_mod import clipping_mod
from strategies import CoLearnSchedule
from strategies.secagg import SecureAggregationGrid
from tests.secagg_fleet import FleetGrid, model, shifted
from tests.tiny import TinyClassifier, TinyData


def site_data(context: Context) -> TinyData:
    return TinyData(n=128, seed=int(context.node_config["partition-id"]))


KWARGS = {"num_sites": 3, "cpus_per_site": 1, "module_fn": lambda cfg: TinyClassifier(),
          "datamodule_fn": site_data, "central_datamodule_fn": lambda cfg: TinyData()}
COMMON = {"num-server-rounds": 2, "min-available-nodes": 3, "epochs-schedule": "fixed",
          "epochs-initial": 1, "fraction-evaluate": 0.0}


def saved_model(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", weights_only=False)["state_dict"]


def test_central_dp_noises_the_securely_aggregated_mean(flower_identity: None) -> None:
    # Prepare: four sites clip their update (inside the secagg mod, as colearn-fl installs
    # them), the server's DP wrapper noises the mean; a wide clip and a tiny noise
    nodes = [1, 2, 3, 4]
    fleet = FleetGrid(nodes, run_config={"dp-noise-multiplier": 1e-3}, mods=[clipping_mod])
    schedule = CoLearnSchedule(FedAvg(min_available_nodes=4, fraction_evaluate=0.0),
                               lr_max=0.1, lr_min=0.01)
    strategy = ClientSideFixedClipping(schedule, noise_multiplier=1e-3, clipping_norm=100.0,
                                       num_sampled_clients=4)
    # Execute
    arrays = strategy.start(grid=SecureAggregationGrid(fleet, records=schedule.rounds),
                            initial_arrays=model(), num_rounds=1, timeout=30).arrays
    # Assert: every site averaged; the model is the mean plus noise of std 1e-3 * 100 / 4
    assert schedule.rounds[1]["sites-averaged"] == 4
    trained = [shifted(n, model()) for n in nodes]
    mean = sum(m["w"].numpy().astype(np.float64) * n for m, n in trained) / 100
    noise = arrays["w"].numpy() - mean
    assert 0.005 < noise.std() < 0.05
    assert arrays["bn.num_batches_tracked"].numpy() == 7 + 3  # examples-weighted, not noised


@pytest.mark.slow  # two simulated federations: about 30 s
def test_a_secure_run_learns_the_plain_runs_model(tmp_path) -> None:
    # Execute: the same run, plain and with secure aggregation
    plain = simulate({**COMMON, "output-dir": str(tmp_path), "run-name": "plain"}, **KWARGS)
    secure = simulate({**COMMON, "output-dir": str(tmp_path), "run-name": "secure",
                       "secure-aggregation": True}, **KWARGS)
    # Assert: every site averaged each round; the same model to a few quantisation steps
    rows = json.loads((secure / "history.json").read_text())["rounds"]
    assert [r["sites-averaged"] for r in rows[1:]] == [3, 3]
    assert rows[-1]["central-accuracy"] > 0.85
    assert all(r["bytes-secagg-received"] > r["bytes-received"] / 2 for r in rows[1:])
    ours, theirs = saved_model(secure), saved_model(plain)
    for key, values in theirs.items():
        assert ours[key].dtype == values.dtype, key
        if values.is_floating_point():
            assert (ours[key] - values).abs().max() < 1e-6, key
        else:
            assert torch.equal(ours[key], values), key
