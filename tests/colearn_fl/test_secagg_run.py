"""Secure aggregation in a real simulated federation (Ray actors): CoLearnSchedule over
FedAvg runs its rounds on SecAgg+ and ends where the plain run ends, to the quantisation
error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from flwr.app import Context

from colearn_fl.simulation import simulate
from tests.tiny import TinyClassifier, TinyData


def site_data(context: Context) -> TinyData:
    return TinyData(n=128, seed=int(context.node_config["partition-id"]))


KWARGS = {"num_sites": 3, "cpus_per_site": 1, "module_fn": lambda cfg: TinyClassifier(),
          "datamodule_fn": site_data, "central_datamodule_fn": lambda cfg: TinyData()}
COMMON = {"num-server-rounds": 2, "min-available-nodes": 3, "epochs-schedule": "fixed",
          "epochs-initial": 1, "fraction-evaluate": 0.0}


def model(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", weights_only=False)["state_dict"]


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
    ours, theirs = model(secure), model(plain)
    for key, values in theirs.items():
        assert ours[key].dtype == values.dtype, key
        if values.is_floating_point():
            assert (ours[key] - values).abs().max() < 1e-6, key
        else:
            assert torch.equal(ours[key], values), key
