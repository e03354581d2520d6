"""End-to-end co-learning federations in Flower's simulation engine (real Ray actors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flwr.app import Context
from flwr.simulation import run_simulation

import colearn_fl
from colearn_fl.errors import ColearnError
from colearn_fl.simulation import simulate
from tests.tiny import TinyClassifier, TinyData

BACKEND = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}}


def site_data(context: Context) -> TinyData:
    return TinyData(n=128, seed=int(context.node_config["partition-id"]))


def history(folder: Path) -> list[dict]:
    return json.loads((folder / "history.json").read_text())["rounds"]


def test_users_own_module_federates_with_two_lines(tmp_path, monkeypatch) -> None:
    # Prepare: a user's module and data, not from tasks/, wired with the public API only
    monkeypatch.chdir(tmp_path)
    clientapp = colearn_fl.client_app(lambda cfg: TinyClassifier(with_scheduler=True), site_data)
    serverapp = colearn_fl.server_app(lambda cfg: TinyClassifier(),
                                      central_datamodule_fn=lambda cfg: TinyData())
    # Execute: default run config (3 rounds, decaying epochs 4, 2, 1, cosine cycle)
    run_simulation(server_app=serverapp, client_app=clientapp, num_supernodes=2,
                   backend_config=BACKEND)
    # Assert
    (folder,) = (tmp_path / "outputs").iterdir()
    rows = history(folder)
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert [r.get("local-epochs") for r in rows] == [None, 4, 2, 1]
    assert all(r["sites-averaged"] == 2 for r in rows[1:])
    assert rows[-1]["central-accuracy"] > 0.85  # the rule is learnable; chance is 0.5
    assert {"federated-accuracy", "train-loss", "bytes-sent", "bytes-received"} <= set(rows[-1])
    for name in ("history.csv", "checkpoint.pt", "curves.png", "model-final.ckpt",
                 "model-best.ckpt", "model-final.pt", "model-best.pt"):
        assert (folder / name).is_file()


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_resume_continues_with_the_next_rounds_schedule(tmp_path) -> None:
    # Prepare: a 2-round run
    common = {"output-dir": str(tmp_path), "run-name": "r", "epochs-schedule": "linear",
              "epochs-initial": 1}
    kwargs = {"num_sites": 2, "cpus_per_site": 1, "module_fn": lambda cfg: TinyClassifier(),
              "datamodule_fn": site_data, "central_datamodule_fn": lambda cfg: TinyData()}
    simulate({**common, "num-server-rounds": 2}, **kwargs)
    # Execute: resume the same run to 3 rounds
    folder = simulate({**common, "num-server-rounds": 3, "resume": True}, **kwargs)
    # Assert: rounds 0..3 exactly once; round 3 got round 3's epochs (1 + 1 * 2)
    rows = history(folder)
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert rows[3]["local-epochs"] == 3


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_fashion_mnist_federation_learns(tmp_path) -> None:
    # Execute: 2 sites, 2000 real training images, 2 rounds (epochs 1, 2)
    folder = simulate({"max-samples": 2000, "num-server-rounds": 2, "output-dir": str(tmp_path)},
                      num_sites=2, cpus_per_site=1)
    # Assert: well above chance (10 classes -> 0.1)
    rows = history(folder)
    assert rows[0]["central-accuracy"] < 0.3
    assert rows[-1]["central-accuracy"] > 0.6


def test_missing_data_stops_the_run_with_the_sites_reason(tmp_path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    # The server cannot tell which data set to expect, and says how to get one, before round 1.
    with pytest.raises(ColearnError, match="holds no image data set.*apt-get install dataset-f"):
        simulate({"data-dir": str(empty), "output-dir": str(tmp_path)}, num_sites=2,
                 cpus_per_site=1)
