"""Server-side SWA in a real simulated federation: the average, its statistics recomputed by
the sites, and its state carried over a resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Context

from colearn_fl.simulation import simulate
from colearn_fl.site.bn_refresh import input_moments
from tests.tiny import TinyClassifier, TinyData


def site_data(context: Context) -> TinyData:
    return TinyData(n=128, seed=int(context.node_config["partition-id"]))


KWARGS = {"num_sites": 2, "cpus_per_site": 1, "module_fn": lambda cfg: TinyClassifier(),
          "datamodule_fn": site_data, "central_datamodule_fn": lambda cfg: TinyData()}


def checkpoint(folder: Path) -> dict:
    return torch.load(folder / "checkpoint.pt", weights_only=False)


@pytest.mark.slow  # an 18 s simulation; strategies/test_swa.py covers the statistics by hand
def test_swa_model_gets_the_sites_pooled_statistics(tmp_path) -> None:
    # Execute: one round with SWA from round 1 (the average is that round's global model)
    folder = simulate({"output-dir": str(tmp_path), "run-name": "s", "num-server-rounds": 1,
                       "swa-start": 1, "fraction-evaluate": 0.0}, **KWARGS)
    # Assert: the kept model has the global weights and the BatchNorm statistics of both
    # sites' training data pooled (128 rows each: a plain mean of the sites' moments)
    saved = checkpoint(folder)
    model, trained = saved["state_dict"], saved["training-state-dict"]
    assert torch.equal(model["net.0.weight"], trained["net.0.weight"])
    module = TinyClassifier()
    module.load_state_dict(model)
    moments = [input_moments(module, TinyData(n=128, seed=s).train_dataloader())[0]["net.1"]
               for s in (0, 1)]
    mean = (moments[0][0] + moments[1][0]) / 2
    var = (moments[0][1] + moments[0][0] ** 2 + moments[1][1] + moments[1][0] ** 2) / 2 - mean ** 2
    np.testing.assert_allclose(model["net.1.running_mean"].numpy(), mean.numpy(), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(model["net.1.running_var"].numpy(), var.numpy(), rtol=1e-4,
                               atol=1e-5)
    row = json.loads((folder / "history.json").read_text())["rounds"][1]
    assert (row["swa-models"], row["swa-refresh-sites"]) == (1, 2)


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_swa_state_survives_resume(tmp_path) -> None:
    # Prepare: 2 rounds with SWA from round 1
    common = {"output-dir": str(tmp_path), "run-name": "r", "swa-start": 1,
              "epochs-schedule": "fixed", "epochs-initial": 1, "fraction-evaluate": 0.0}
    simulate({**common, "num-server-rounds": 2}, **KWARGS)
    assert checkpoint(tmp_path / "r")["swa"]["count"] == 2
    # Execute: resume to 3 rounds
    folder = simulate({**common, "num-server-rounds": 3, "resume": True}, **KWARGS)
    # Assert: round 3 folded a third model into the same average, and it learned
    rows = json.loads((folder / "history.json").read_text())["rounds"]
    assert [r.get("swa-models") for r in rows] == [None, 1, 2, 3]
    assert checkpoint(folder)["swa"]["count"] == 3
    assert rows[-1]["central-accuracy"] > 0.7  # chance is 0.5; SWA keeps the weak round 1 in
