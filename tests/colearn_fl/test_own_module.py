"""A user's own Lightning project at the defaults: an Adam module with no saved
hyper-parameters runs co-learning's cycle from its own LR, and, with the cycle held at that LR,
trains as it does under stock FedAvg (the default cosine cycle's cost in this short budget is
measured in docs/results.md, section 9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

from colearn_fl.config import RunConfig
from colearn_fl.simulation import simulate
from tests.tiny import TinyClassifier, TinyData

SITES, SAMPLES = 2, 1024
BACKEND = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"address": "local"}}
EPOCHS = RunConfig().round_epochs()  # the default schedule's epochs: 4, 2, 1


def adam_module(_run_config: Any = None) -> TinyClassifier:
    """Adam at lr 1e-3, built in configure_optimizers; no save_hyperparameters()."""
    return TinyClassifier(optimizer="adam")


def site_data(context: Context) -> TinyData:
    return TinyData(n=SAMPLES, seed=int(context.node_config["partition-id"]))


def validation_loss(module: pl.LightningModule) -> float:
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu")
    return float(trainer.validate(module, datamodule=TinyData(), verbose=False)[0]["loss"])


def stock_fedavg(folder: Path) -> float:
    """Flower's FedAvg over sites that fit the module with its own optimizer, for the same
    epochs per round; the final global model's validation loss."""
    client, server = ClientApp(), ServerApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        module = adam_module()
        module.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        server_round = int(msg.content["config"]["server-round"])
        torch.manual_seed(server_round * 10 + int(context.node_config["partition-id"]))
        epochs = EPOCHS[server_round - 1]
        trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             limit_val_batches=0, accelerator="cpu")
        trainer.fit(module, datamodule=site_data(context))
        return Message(RecordDict({"arrays": ArrayRecord(module.state_dict()),
                                   "metrics": MetricRecord({"num-examples": SAMPLES})}),
                       reply_to=msg)

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        torch.manual_seed(0)
        result = FedAvg(fraction_evaluate=0.0).start(
            grid=grid, initial_arrays=ArrayRecord(adam_module().state_dict()),
            num_rounds=len(EPOCHS))
        module = adam_module()
        module.load_state_dict(result.arrays.to_torch_state_dict())
        (folder / "loss.json").write_text(json.dumps(validation_loss(module)))

    folder.mkdir(parents=True)
    run_simulation(server_app=server, client_app=client, num_supernodes=SITES,
                   backend_config=BACKEND)
    return float(json.loads((folder / "loss.json").read_text()))


def colearning(folder: Path, **run_config: Any) -> list[dict]:
    run = simulate({"output-dir": str(folder), **run_config}, num_sites=SITES,
                   module_fn=adam_module, datamodule_fn=site_data,
                   central_datamodule_fn=lambda _run_config: TinyData())
    return json.loads((run / "history.json").read_text())["rounds"]


def test_an_adam_module_runs_the_cycle_from_its_own_lr_and_learns(tmp_path: Path) -> None:
    # Execute: co-learning at the defaults (lr-max 'default': nothing set)
    rows = colearning(tmp_path, **{"run-name": "default"})
    # Assert: every round's cycle starts at the Adam's own 1e-3 and ends at 1 % of it; every
    # site's first step used 1e-3; the global model's loss fell
    assert [(r["lr-max"], r["lr-min"]) for r in rows[1:]] == [(1e-3, 1e-5)] * len(EPOCHS)
    assert all(s["lr-first"] == 1e-3 for r in rows[1:] for s in r["site-reports"])
    assert rows[-1]["central-loss"] < rows[0]["central-loss"]


@pytest.mark.slow  # CI runs it (README: the slow checks); too long for the default suite
def test_at_its_own_constant_lr_it_trains_as_under_stock_fedavg(tmp_path: Path) -> None:
    # Execute: the same epochs, the cycle held at the module's LR, and Flower's own FedAvg
    # (optimizer-state='reset': stock FedAvg's sites build a new optimizer every round too)
    rows = colearning(tmp_path, **{"run-name": "constant", "lr-schedule": "constant",
                                   "optimizer-state": "reset"})
    fedavg_loss = stock_fedavg(tmp_path / "fedavg")
    # Assert: the same training up to the sites' shuffles (seeded differently)
    assert rows[-1]["central-loss"] == pytest.approx(fedavg_loss, rel=0.05)
